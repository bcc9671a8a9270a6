"""Random radiometry per patch in training (``TrainSpec.radiometric``): ranges, ranks, and the loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic import one_epoch_weights

from geoslide.errors import ConfigError
from geoslide.training import TrainSpec
from geoslide.training.batches import jitter_radiometry


def _images(n: int = 16) -> torch.Tensor:
    return torch.randn((n, 3, 24, 24), generator=torch.Generator().manual_seed(0))


def test_zero_strength_leaves_the_images_alone():
    images = _images()
    assert torch.equal(jitter_radiometry(images, torch.Generator().manual_seed(1), 0.0), images)


def test_each_patch_gets_its_own_contrast_and_brightness_within_the_documented_ranges():
    images = _images(64)
    out = jitter_radiometry(images, torch.Generator().manual_seed(1), 1.0)
    slopes, intercepts = [], []
    for x, y in zip(images.numpy(), out.numpy(), strict=True):  # least squares per patch and band
        for b in range(x.shape[0]):
            slope, intercept = np.polyfit(x[b].ravel(), y[b].ravel(), 1)
            slopes.append(slope)
            intercepts.append(intercept)
    slopes, intercepts = np.array(slopes), np.array(intercepts)
    # patch gain exp(+-0.3) times band gain exp(+-0.1); patch offset +-0.5 plus band offset +-0.15
    assert np.exp(-0.41) < slopes.min() and slopes.max() < np.exp(0.41) and slopes.std() > 0.1
    assert np.abs(intercepts).max() < 0.66 and intercepts.std() > 0.15


def test_two_ranks_get_the_slices_one_process_gets():
    images = _images(8)
    whole = jitter_radiometry(images, torch.Generator().manual_seed(5), 1.0)
    halves = [jitter_radiometry(images[r * 4:(r + 1) * 4], torch.Generator().manual_seed(5), 1.0, rank=r, world=2)
              for r in range(2)]
    torch.testing.assert_close(torch.cat(halves), whole)


def test_strength_is_checked():
    with pytest.raises(ConfigError, match="radiometric must be a strength between 0"):
        TrainSpec(radiometric=-1)


def test_training_with_radiometry_learns_other_weights(tmp_path):
    weights = [one_epoch_weights(tmp_path / str(strength), radiometric=strength) for strength in (0.0, 1.0)]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
