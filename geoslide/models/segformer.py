"""SegFormer (Xie et al. 2021): Mix Transformer encoder and an all-MLP decoder, B0 to B5.

GDCLD found SegFormer the best of seven models on multi-source imagery. The encoder has four
stages at strides 4, 8, 16 and 32; each stage embeds overlapping patches with a strided
convolution (7x7 stride 4, then 3x3 stride 2), then runs transformer blocks whose self-attention
shrinks keys and values by a spatial reduction ratio (8, 4, 2, 1) and whose feed-forward network
mixes positions with a 3x3 depthwise convolution (Mix-FFN), so no positional encoding is needed.
The decoder projects every stage to one width, upsamples to stride 4, fuses and classifies; the
logits are upsampled bilinearly to the input size. Attention is global: an output pixel depends on
the whole input, so the model has no finite receptive field (``receptive_field = None``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from geoslide.errors import ModelError
from geoslide.models.registry import register


@dataclass(frozen=True)
class MiTSpec:
    """Sizes of one SegFormer variant (Table 6 of the paper).

    Parameters
    ----------
    dims
        Hidden width of each of the four stages.
    depths
        Transformer blocks per stage.
    decoder_dim
        Width of the all-MLP decoder.
    heads
        Attention heads per stage.
    reductions
        Spatial reduction ratio of keys and values per stage.
    mlp_ratio
        Mix-FFN expansion.
    """

    dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    decoder_dim: int
    heads: tuple[int, int, int, int] = (1, 2, 5, 8)
    reductions: tuple[int, int, int, int] = (8, 4, 2, 1)
    mlp_ratio: int = 4


_WIDE = (64, 128, 320, 512)
VARIANTS: dict[str, MiTSpec] = {
    "b0": MiTSpec((32, 64, 160, 256), (2, 2, 2, 2), 256),
    "b1": MiTSpec(_WIDE, (2, 2, 2, 2), 256),
    "b2": MiTSpec(_WIDE, (3, 4, 6, 3), 768),
    "b3": MiTSpec(_WIDE, (3, 4, 18, 3), 768),
    "b4": MiTSpec(_WIDE, (3, 8, 27, 3), 768),
    "b5": MiTSpec(_WIDE, (3, 6, 40, 3), 768),
}


class OverlapPatchEmbed(nn.Module):
    """Strided convolution with ``kernel > stride`` (overlapping patches), then layer norm over channels."""

    def __init__(self, c_in: int, dim: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(c_in, dim, kernel, stride=stride, padding=kernel // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """Tokens ``(N, H*W, dim)`` and the token grid height and width."""
        x = self.proj(x)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


def _to_map(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(N, H*W, C)`` tokens to a ``(N, C, H, W)`` map."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], h, w)


class EfficientSelfAttention(nn.Module):
    """Multi-head self-attention whose keys and values come from a grid shrunk by ``reduction``."""

    def __init__(self, dim: int, heads: int, reduction: int) -> None:
        super().__init__()
        if dim % heads:
            raise ModelError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.reduce: nn.Module | None = None
        if reduction > 1:
            self.reduce = nn.Conv2d(dim, dim, reduction, stride=reduction)
            self.norm = nn.LayerNorm(dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, L, C)`` to ``(N, heads, L, C / heads)``."""
        n, length, c = x.shape
        return x.reshape(n, length, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Attended tokens, same shape as ``x`` ``(N, H*W, C)``."""
        context = x
        if self.reduce is not None:
            context = self.norm(self.reduce(_to_map(x, h, w)).flatten(2).transpose(1, 2))
        k, v = self.kv(context).chunk(2, dim=-1)
        out = F.scaled_dot_product_attention(self._split(self.q(x)), self._split(k), self._split(v))
        return self.proj(out.transpose(1, 2).flatten(2))


class MixFFN(nn.Module):
    """Linear, 3x3 depthwise convolution, GELU, linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Tokens ``(N, H*W, dim)``."""
        x = self.dwconv(_to_map(self.fc1(x), h, w)).flatten(2).transpose(1, 2)
        return self.fc2(F.gelu(x))


class DropPath(nn.Module):
    """Stochastic depth: in training, drop a residual branch for a random subset of samples."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` rescaled by ``1 / keep`` for kept samples, zero for dropped ones (identity in eval)."""
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device) < keep
        return x * mask.to(x.dtype) / keep


class MiTBlock(nn.Module):
    """Pre-norm transformer block: efficient self-attention and Mix-FFN, each residual."""

    def __init__(self, dim: int, heads: int, reduction: int, mlp_ratio: int, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = EfficientSelfAttention(dim, heads, reduction)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = MixFFN(dim, dim * mlp_ratio)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Tokens ``(N, H*W, dim)``."""
        x = x + self.drop_path(self.attn(self.norm1(x), h, w))
        return x + self.drop_path(self.ffn(self.norm2(x), h, w))


class MiTStage(nn.Module):
    """Patch embedding, transformer blocks, final layer norm; returns a feature map."""

    def __init__(self, c_in: int, spec: MiTSpec, index: int, drop_rates: list[float]) -> None:
        super().__init__()
        dim = spec.dims[index]
        kernel, stride = (7, 4) if index == 0 else (3, 2)
        self.embed = OverlapPatchEmbed(c_in, dim, kernel, stride)
        self.blocks = nn.ModuleList(
            MiTBlock(dim, spec.heads[index], spec.reductions[index], spec.mlp_ratio, rate) for rate in drop_rates
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map ``(N, dim, H / stride, W / stride)``."""
        tokens, h, w = self.embed(x)
        for block in self.blocks:
            tokens = block(tokens, h, w)
        return _to_map(self.norm(tokens), h, w)


class MixTransformer(nn.Module):
    """The hierarchical MiT encoder: four stages at strides 4, 8, 16, 32.

    Parameters
    ----------
    in_channels
        Input bands.
    spec
        Variant sizes.
    drop_path
        Largest stochastic-depth rate, reached by the last block (0.1 in the paper).
    """

    def __init__(self, in_channels: int, spec: MiTSpec, drop_path: float = 0.1) -> None:
        super().__init__()
        total = sum(spec.depths)
        rates = [drop_path * i / max(1, total - 1) for i in range(total)]
        starts = [sum(spec.depths[:i]) for i in range(4)]
        channels = (in_channels, *spec.dims[:3])
        self.stages = nn.ModuleList(
            MiTStage(channels[i], spec, i, rates[starts[i]:starts[i] + spec.depths[i]]) for i in range(4)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of the four stages, finest first."""
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class AllMLPDecoder(nn.Module):
    """Per-stage linear projection to ``dim``, upsampling to stride 4, linear fusion, linear classifier."""

    def __init__(self, dims: tuple[int, ...], dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.project = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in dims)
        self.fuse = nn.Sequential(
            nn.Conv2d(len(dims) * dim, dim, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU(inplace=True)
        )
        self.dropout = nn.Dropout2d(dropout)
        self.classify = nn.Conv2d(dim, 1, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Logits at the resolution of the first (stride 4) feature map."""
        size = feats[0].shape[-2:]
        maps = [F.interpolate(proj(f), size=size, mode="bilinear", align_corners=False) if i else proj(f)
                for i, (proj, f) in enumerate(zip(self.project, feats, strict=True))]
        return self.classify(self.dropout(self.fuse(torch.cat(maps[::-1], dim=1))))


class SegFormer(nn.Module):
    """SegFormer for binary segmentation: MiT encoder plus all-MLP decoder.

    Parameters
    ----------
    in_channels
        Input bands (any number; only the first patch embedding depends on it).
    spec
        Variant sizes, e.g. ``VARIANTS["b0"]``.
    drop_path
        Largest stochastic-depth rate of the encoder.
    """

    size_multiple = 32
    receptive_field = None

    def __init__(self, in_channels: int, spec: MiTSpec, drop_path: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= drop_path < 1.0:
            raise ModelError(f"drop_path must be in [0, 1), got {drop_path}")
        self.encoder = MixTransformer(in_channels, spec, drop_path)
        self.decoder = AllMLPDecoder(spec.dims, spec.decoder_dim)
        self.apply(_init_weights)
        # the fan-out rule gives the one-output classifier a weight std of sqrt(2), so first logits had a std
        # near 25 and the first BCE near 5; a small normal start gives logits near 0 (BCE near log 2)
        nn.init.normal_(self.decoder.classify.weight, 0.0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, H, W)``."""
        logits = self.decoder(self.encoder(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _init_weights(module: nn.Module) -> None:
    """The paper's initialisation: truncated normal (std 0.02) linears, fan-out normal convolutions."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
        nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _builder(variant: str) -> Callable[..., SegFormer]:
    """The registered builder of one variant."""

    def build(in_channels: int, drop_path: float = 0.1) -> SegFormer:
        return SegFormer(in_channels, VARIANTS[variant], drop_path)

    build.__doc__ = f"SegFormer-{variant.upper()}."
    return build


for _variant in VARIANTS:
    register(f"segformer-{_variant}")(_builder(_variant))
