"""Training batches from a patch store: band statistics, per-epoch order, rank shards, augmentation.

The order of an epoch depends only on ``(seed, epoch)``, and each global batch is cut into equal
per-rank slices, so one process with batch ``B`` and ``W`` ranks with ``B / W`` each see the same
patches at every step (what data-parallel training needs to match a single-process run).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from geoslide.data.store import PatchStore, read_rows
from geoslide.errors import ConfigError, PatchStoreError
from geoslide.models.normalise import Normalisation


def band_stats(store: PatchStore, indices: np.ndarray, batch: int = 256, factor: np.ndarray | None = None
               ) -> Normalisation:
    """NaN-aware per-band mean and standard deviation over the patches ``indices``, streamed.

    With ``factor`` (one value per store row), of each patch divided by its row's factor (a
    ``brightness`` model's statistics, :func:`geoslide.models.patchnorm.scene_brightness`).
    """
    if len(indices) == 0:
        raise PatchStoreError(f"{store.path} has no training patches to compute band statistics from")
    images = store.array("images")
    total = np.zeros((3, images.shape[1]))
    for start in range(0, len(indices), batch):
        rows = indices[start:start + batch]
        chunk = read_rows(images, rows).astype(np.float64)
        if factor is not None:
            chunk /= factor[rows][:, None, None, None]
        valid = ~np.isnan(chunk)
        total += [valid.sum(axis=(0, 2, 3)), np.nansum(chunk, axis=(0, 2, 3)), np.nansum(chunk**2, axis=(0, 2, 3))]
    count, s1, s2 = total
    if (count == 0).any():
        empty = [b for b, c in zip(store.bands, count, strict=True) if c == 0]
        raise PatchStoreError(f"bands {empty} are all nodata in the training patches; drop them or fix the data")
    mean = s1 / count
    std = np.sqrt(np.maximum(s2 / count - mean**2, 0.0))
    return Normalisation(tuple(float(m) for m in mean), tuple(float(max(s, 1e-6)) for s in std))


def epoch_order(n: int, epoch: int, seed: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Positions ``0..n-1`` in this epoch's order: a permutation, or a weighted draw with replacement."""
    rng = np.random.default_rng([seed, epoch])
    if weights is None:
        return rng.permutation(n)
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(n, size=n, replace=True, p=p / p.sum())


def balance_weights(landslide_fraction: np.ndarray, positive_share: float = 0.5) -> np.ndarray:
    """Sampling weights giving patches with landslides ``positive_share`` of the draws (class balance)."""
    positive = np.asarray(landslide_fraction) > 0
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return np.ones(len(positive))
    return np.where(positive, positive_share / n_pos, (1 - positive_share) / n_neg)


def rank_batches(order: np.ndarray, batch_size: int, rank: int = 0, world: int = 1) -> Iterator[np.ndarray]:
    """The slice of every full global batch that ``rank`` reads (a short last batch is dropped)."""
    if batch_size % world:
        raise ConfigError(f"batch size {batch_size} does not split over {world} ranks; use a multiple of it")
    per_rank = batch_size // world
    for start in range(0, len(order) - batch_size + 1, batch_size):
        yield order[start + rank * per_rank: start + (rank + 1) * per_rank]


def augment(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random 90-degree rotations and flips, one draw per patch (the 8 symmetries of a square)."""
    n = images.shape[0]
    draws = torch.randint(0, 8, (n,), generator=generator)
    out_i, out_m = images.clone(), masks.clone()
    for j in range(n):
        out_i[j], out_m[j] = symmetry(images[j], masks[j], int(draws[j]))
    return out_i, out_m


def symmetry(image: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetry ``k`` (0-7) of the square of one ``(band, y, x)`` image and its ``(y, x)`` mask.

    ``k % 4`` quarter turns, then a left-right flip for ``k >= 4``.
    """
    img, msk = torch.rot90(image, k % 4, (1, 2)), torch.rot90(mask, k % 4, (0, 1))
    return (img.flip(2), msk.flip(1)) if k >= 4 else (img, msk)


def jitter_radiometry(images: torch.Tensor, generator: torch.Generator, strength: float, rank: int = 0,
                      world: int = 1) -> torch.Tensor:
    """Random radiometry per patch of normalised ``(n, band, y, x)`` images.

    So that a model learns shapes and textures rather than one camera's colours. Per patch: a
    contrast gain (``exp(U(-0.3, 0.3) * strength)``) and a brightness offset (``U(-0.5, 0.5) *
    strength``, in units of the bands' spread), then per band a gain
    (``exp(U(-0.1, 0.1) * strength)``) and offset (``U(-0.15, 0.15) * strength``), and pixel noise
    (standard deviation ``U(0, 0.05) * strength``). The draws are made for the whole global batch
    of ``world`` ranks and this rank's slice taken, so they do not depend on the number of ranks.
    """
    n, bands = images.shape[:2]
    total = n * world

    def draw(*shape: int) -> torch.Tensor:
        return (torch.rand((total, *shape), generator=generator) - 0.5)[rank * n:(rank + 1) * n]

    gain = torch.exp(0.6 * strength * draw(1, 1, 1)) * torch.exp(0.2 * strength * draw(bands, 1, 1))
    offset = strength * draw(1, 1, 1) + 0.3 * strength * draw(bands, 1, 1)
    sigma = 0.05 * strength * (draw(1, 1, 1) + 0.5)
    noise = torch.randn((total, *images.shape[1:]), generator=generator)[rank * n:(rank + 1) * n] * sigma
    return images * gain.to(images.dtype) + offset.to(images.dtype) + noise.to(images.dtype)


def paste_draws(n: int, sources: int, size: int, share: float, generator: torch.Generator, rank: int = 0,
                world: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which patches of this rank's slice get a landslide pasted, from which source, where.

    Drawn for the whole global batch of ``world`` slices of ``n`` and this rank's slice taken, so
    that the draws do not depend on the number of ranks. Returns, for the slice, the chosen
    positions (within the slice), each one's source index (``0..sources-1``) and its shift
    ``(k, dy, dx)``: a quarter-turn count (0-7, 4-7 flipped) and a roll in pixels.
    """
    total = n * world
    chosen = torch.rand(total, generator=generator) < share
    source = torch.randint(0, max(sources, 1), (total,), generator=generator)
    shift = torch.stack([torch.randint(0, 8, (total,), generator=generator),
                         torch.randint(0, size, (total,), generator=generator),
                         torch.randint(0, size, (total,), generator=generator)], dim=1)
    part = slice(rank * n, (rank + 1) * n)
    where = np.flatnonzero(chosen[part].numpy()) if sources else np.zeros(0, dtype=int)
    return where, source[part].numpy()[where], shift[part].numpy()[where]


def paste_landslides(images: torch.Tensor, masks: torch.Tensor, where: np.ndarray, src_images: torch.Tensor,
                     src_masks: torch.Tensor, shifts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy-paste: the landslide pixels of ``src_*[j]`` laid onto patch ``where[j]``.

    Each source is turned (``k`` quarter turns, flipped for ``k >= 4``) and rolled by ``(dy, dx)``;
    its landslide pixels replace the patch's, with a one-pixel soft edge so that a cut outline is
    not itself a cue, and become landslide in the mask. Source pixels that are background or
    nodata leave the patch as it was.
    """
    out_i, out_m = images.clone(), masks.clone()
    for j, i in enumerate(where):
        k, dy, dx = (int(v) for v in shifts[j])
        img, msk = symmetry(src_images[j], src_masks[j], k)
        img, msk = torch.roll(img, (dy, dx), (1, 2)), torch.roll(msk, (dy, dx), (0, 1))
        hard = (msk == 1).to(images.dtype)
        alpha = torch.nn.functional.avg_pool2d(hard[None, None], 3, stride=1, padding=1, count_include_pad=False)[0, 0]
        alpha = torch.maximum(alpha, hard * 0.5) * (msk != 255)
        out_i[i] = out_i[i] * (1 - alpha) + torch.nan_to_num(img) * alpha
        out_m[i] = torch.where(msk == 1, torch.ones_like(out_m[i]), out_m[i])
    return out_i, out_m
