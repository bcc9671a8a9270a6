"""Copy-paste augmentation in training (``TrainSpec.paste``): what is pasted where, ranks, and the loop.

The reference is numpy: the source patch turned with ``np.rot90``/``np.flip`` and rolled with
``np.roll``, its landslide pixels compared with the pasted patch's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic import one_epoch_weights

from geoslide.errors import ConfigError
from geoslide.training import TrainSpec
from geoslide.training.batches import paste_draws, paste_landslides


def _batch(n: int, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randn((n, 3, size, size), generator=g)
    masks = torch.zeros((n, size, size), dtype=torch.int64)
    for i in range(n):  # one square landslide per patch, different places
        y, x = 2 + 3 * i % 20, 5 + 5 * i % 20
        masks[i, y:y + 6, x:x + 9] = 1
    masks[:, -2:, :] = 255  # a nodata strip
    return images, masks


def _turned(a: np.ndarray, k: int, dy: int, dx: int) -> np.ndarray:
    """numpy's version of a source's turn and roll; ``a`` is (..., y, x)."""
    out = np.rot90(a, k % 4, axes=(-2, -1))
    if k >= 4:
        out = np.flip(out, -1)
    return np.roll(out, (dy, dx), axis=(-2, -1))


def test_landslide_pixels_of_the_source_are_laid_turned_and_shifted_onto_the_patch():
    images, masks = _batch(2)
    src_i, src_m = _batch(3, seed=1)
    shifts = np.array([[5, 7, 11], [2, 30, 3]])
    out_i, out_m = paste_landslides(images, masks, np.array([0, 1]), src_i[1:], src_m[1:], shifts)
    for j, i in enumerate((0, 1)):
        k, dy, dx = shifts[j]
        source = _turned(src_m[j + 1].numpy(), k, dy, dx)
        pixels = _turned(src_i[j + 1].numpy(), k, dy, dx)
        core = (source == 1) & np.all([np.roll(source == 1, s, axis=a) for a in (0, 1) for s in (-1, 1)], axis=0)
        assert core.sum() > 10
        np.testing.assert_allclose(out_i[i].numpy()[:, core], pixels[:, core], rtol=1e-6)  # interior: the source
        far = ~np.any([np.roll(source != 0, (a, b), axis=(0, 1)) for a in (-1, 0, 1) for b in (-1, 0, 1)], axis=0)
        np.testing.assert_array_equal(out_i[i].numpy()[:, far], images[i].numpy()[:, far])  # elsewhere: untouched
        expected = np.where(source == 1, 1, masks[i].numpy())
        np.testing.assert_array_equal(out_m[i].numpy(), expected)


def test_patches_not_chosen_and_source_nodata_are_left_alone():
    images, masks = _batch(3)
    src_i, src_m = _batch(1, seed=2)
    src_m[0] = 255  # a source that is all nodata pastes nothing
    out_i, out_m = paste_landslides(images, masks, np.array([1]), src_i, src_m, np.array([[0, 0, 0]]))
    assert torch.equal(out_i, images) and torch.equal(out_m, masks)


def test_the_share_of_patches_pasted_onto_is_about_the_share_asked_and_none_without_sources():
    where, source, shifts = paste_draws(4000, 50, 32, 0.3, torch.Generator().manual_seed(0))
    assert 0.27 < len(where) / 4000 < 0.33
    assert source.min() >= 0 and source.max() < 50 and shifts[:, 0].max() < 8 and shifts[:, 1:].max() < 32
    assert len(paste_draws(64, 0, 32, 1.0, torch.Generator().manual_seed(0))[0]) == 0


def test_two_ranks_get_the_draws_one_process_gets_for_their_slices():
    whole = paste_draws(8, 20, 32, 0.5, torch.Generator().manual_seed(5))
    for rank in range(2):
        part = paste_draws(4, 20, 32, 0.5, torch.Generator().manual_seed(5), rank=rank, world=2)
        mine = (whole[0] >= rank * 4) & (whole[0] < (rank + 1) * 4)
        np.testing.assert_array_equal(part[0], whole[0][mine] - rank * 4)
        np.testing.assert_array_equal(part[1], whole[1][mine])
        np.testing.assert_array_equal(part[2], whole[2][mine])


def test_the_share_is_checked():
    with pytest.raises(ConfigError, match="paste must be a share of patches between 0"):
        TrainSpec(paste=1.5)


def test_training_with_paste_learns_other_weights(tmp_path):
    weights = [one_epoch_weights(tmp_path / str(share), paste=share) for share in (0.0, 1.0)]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
