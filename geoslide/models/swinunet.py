"""Swin-Unet (Cao et al. 2022): a U-shaped network of Swin Transformer blocks (Liu et al. 2021).

4x4 patches are embedded linearly; the encoder runs pairs of Swin blocks (self-attention within
``window x window`` windows, every second block on windows shifted by half a window, with a
learned relative position bias) and merges 2x2 patches between stages (widths C, 2C, 4C, 8C).
The decoder mirrors it: patch expanding (a linear layer to twice the width, rearranged to 2x the
resolution at half the width), concatenation with the encoder features of that stage, a linear
layer back to the width, Swin blocks; a final 4x patch expanding and a 1x1 convolution classify.
Maps whose side is not a multiple of the window are padded per block (as Swin does); a map smaller
than the window is attended as one window without shift. Windows of attention over a padded
patch grid depend on where the tile starts, so the model is treated as global.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from geoslide.errors import ModelError
from geoslide.models.registry import register


def _windows(x: torch.Tensor, ws: int) -> torch.Tensor:
    """``(N, H, W, C)`` (H, W multiples of ``ws``) to ``(N * windows, ws * ws, C)``."""
    n, h, w, c = x.shape
    x = x.view(n, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def _merge_windows(x: torch.Tensor, ws: int, n: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`_windows`."""
    x = x.view(n, h // ws, w // ws, ws, ws, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h, w, -1)


class WindowAttention(nn.Module):
    """Multi-head self-attention within windows, with a relative position bias for windows up to ``window``."""

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        if dim % heads:
            raise ModelError(f"Swin width {dim} is not divisible by {heads} heads")
        self.heads, self.window = heads, window
        self.bias = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias, std=0.02)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def _relative_bias(self, ws: int) -> torch.Tensor:
        """``(heads, ws*ws, ws*ws)`` bias of every query-key offset within a ``ws`` window."""
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + self.window - 1
        index = (rel[..., 0] * (2 * self.window - 1) + rel[..., 1]).to(self.bias.device)
        return self.bias[index.flatten()].view(ws * ws, ws * ws, -1).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, ws: int, mask: torch.Tensor | None) -> torch.Tensor:
        """Windows ``(B, ws*ws, C)``; ``mask`` ``(windows, ws*ws, ws*ws)`` adds -inf-like values across regions."""
        b, length, c = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = self._relative_bias(ws)[None]
        if mask is not None:
            bias = (bias + mask[:, None]).repeat(b // mask.shape[0], 1, 1, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(b, length, c))


def _shift_mask(h: int, w: int, ws: int, shift: int, device: torch.device) -> torch.Tensor:
    """Additive mask that keeps shifted windows from attending across the regions the roll joined."""
    region = torch.zeros(1, h, w, 1, device=device)
    spans = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    label = 0
    for hs in spans:
        for wsl in spans:
            region[:, hs, wsl] = label
            label += 1
    ids = _windows(region, ws).squeeze(-1)
    return (ids[:, None, :] != ids[:, :, None]).float() * -100.0


class SwinBlock(nn.Module):
    """Pre-norm (shifted) window attention and MLP, each residual, on ``(N, H, W, C)`` maps."""

    def __init__(self, dim: int, heads: int, window: int, shifted: bool) -> None:
        super().__init__()
        self.window, self.shifted = window, shifted
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, H, W, C)``."""
        n, h, w, _ = x.shape
        ws = min(self.window, h, w)
        shift = ws // 2 if self.shifted and min(h, w) > self.window else 0
        y = F.pad(self.norm1(x), (0, 0, 0, (-w) % ws, 0, (-h) % ws))
        hp, wp = y.shape[1:3]
        mask = None
        if shift:
            y = torch.roll(y, (-shift, -shift), dims=(1, 2))
            mask = _shift_mask(hp, wp, ws, shift, x.device)
        y = _merge_windows(self.attn(_windows(y, ws), ws, mask), ws, n, hp, wp)
        if shift:
            y = torch.roll(y, (shift, shift), dims=(1, 2))
        x = x + y[:, :h, :w]
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 neighbouring patches concatenated (4C), layer norm, linear to 2C."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduce = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, H/2, W/2, 2C)``."""
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduce(self.norm(x))


class PatchExpand(nn.Module):
    """Linear to ``scale**2 * C / out_div`` channels, rearranged to ``scale`` x the resolution, layer norm."""

    def __init__(self, dim: int, scale: int, out_dim: int) -> None:
        super().__init__()
        self.scale, self.out_dim = scale, out_dim
        self.expand = nn.Linear(dim, scale * scale * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, s*H, s*W, out_dim)``."""
        n, h, w, _ = x.shape
        s = self.scale
        x = self.expand(x).view(n, h, w, s, s, self.out_dim).permute(0, 1, 3, 2, 4, 5)
        return self.norm(x.reshape(n, h * s, w * s, self.out_dim))


def _stage(dim: int, heads: int, window: int, depth: int) -> nn.Sequential:
    return nn.Sequential(*(SwinBlock(dim, heads, window, shifted=i % 2 == 1) for i in range(depth)))


class SwinEncoder(nn.Module):
    """Patch embedding and four Swin stages with patch merging between them."""

    def __init__(self, in_channels: int, dim: int, depths: tuple[int, ...], heads: tuple[int, ...], window: int
                 ) -> None:
        super().__init__()
        self.embed = nn.Conv2d(in_channels, dim, 4, stride=4)
        self.embed_norm = nn.LayerNorm(dim)
        self.stages = nn.ModuleList(_stage(dim * 2**i, heads[i], window, depths[i]) for i in range(4))
        self.merges = nn.ModuleList(PatchMerging(dim * 2**i) for i in range(3))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(N, H, W, C)`` features of the four stages, finest first."""
        x = self.embed_norm(self.embed(x).permute(0, 2, 3, 1))
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else self.merges[i - 1](feats[-1]))
            feats.append(x)
        return feats


class SwinUNet(nn.Module):
    """Swin-Unet for binary segmentation; see the module docstring.

    Parameters
    ----------
    in_channels
        Input bands.
    dim
        Embedding width C (96 in the paper).
    depths, heads
        Swin blocks and attention heads per stage (the decoder mirrors them).
    window
        Attention window side in patches (7 in the paper).
    """

    size_multiple = 32
    receptive_field = None

    def __init__(self, in_channels: int, dim: int = 96, depths: tuple[int, ...] = (2, 2, 2, 2),
                 heads: tuple[int, ...] = (3, 6, 12, 24), window: int = 7) -> None:
        super().__init__()
        if len(depths) != 4 or len(heads) != 4 or window < 1:
            raise ModelError(f"SwinUNet needs four depths and four head counts and window >= 1, got "
                             f"depths={depths}, heads={heads}, window={window}")
        self.encoder = SwinEncoder(in_channels, dim, tuple(depths), tuple(heads), window)
        widths = [dim * 2**i for i in range(4)]
        self.expands = nn.ModuleList(PatchExpand(widths[i + 1], 2, widths[i]) for i in (2, 1, 0))
        self.concat = nn.ModuleList(nn.Linear(2 * widths[i], widths[i]) for i in (2, 1, 0))
        self.stages = nn.ModuleList(_stage(widths[i], heads[i], window, depths[i]) for i in (2, 1, 0))
        self.norm = nn.LayerNorm(dim)
        self.final = PatchExpand(dim, 4, dim)
        self.classify = nn.Conv2d(dim, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)``."""
        feats = self.encoder(x)
        y = feats[3]
        for i, (expand, concat, stage) in enumerate(zip(self.expands, self.concat, self.stages, strict=True)):
            y = stage(concat(torch.cat([expand(y), feats[2 - i]], dim=-1)))
        y = self.final(self.norm(y)).permute(0, 3, 1, 2)
        return self.classify(y)


@register("swinunet")
def build_swinunet(in_channels: int, dim: int = 96, depths: tuple[int, ...] = (2, 2, 2, 2),
                   heads: tuple[int, ...] = (3, 6, 12, 24), window: int = 7) -> SwinUNet:
    """Swin-Unet (GDCLD)."""
    return SwinUNet(in_channels, dim, tuple(depths), tuple(heads), window)
