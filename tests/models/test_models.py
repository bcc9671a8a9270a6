"""Segmentation architectures: shapes for any band count, paper sizes, training, receptive fields, tiling."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from geoslide.errors import ModelError
from geoslide.models import build_model, model_names, size_multiple
from geoslide.models.receptive import receptive_field

UNETS = ["unet", "resunet", "attention-unet", "attention-resunet", "adsms-unet"]
SMALL = {name: {"base_filters": 4, "depth": 2} for name in UNETS} | {"segformer-b0": {}}
# Encoder parameters of MiT-B0 .. B5 in millions (SegFormer paper, Table 6).
MIT_PARAMS = {"b0": 3.3, "b1": 13.1, "b2": 24.2, "b3": 44.0, "b4": 60.8, "b5": 81.4}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and lose a lot to them on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small(name: str, in_channels: int = 3) -> nn.Module:
    return build_model(name, in_channels, **SMALL[name])


def test_registry_names() -> None:
    expected = set(UNETS) | {f"segformer-{v}" for v in MIT_PARAMS}
    assert expected <= set(model_names())


@pytest.mark.parametrize("in_channels", [1, 3, 4, 14])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_any_band_count_maps_to_one_logit_map(name: str, in_channels: int) -> None:
    model = small(name, in_channels).eval()
    x = torch.randn(2, in_channels, 64, 64)
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (2, 1, 64, 64)
    assert torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1])  # depends on the input


@pytest.mark.parametrize("name", UNETS)
@pytest.mark.parametrize("depth", [1, 3])
def test_unet_size_multiple_is_two_to_the_depth(name: str, depth: int) -> None:
    model = build_model(name, 3, base_filters=2, depth=depth)
    assert size_multiple(model) == 2**depth
    assert getattr(model, "deep_supervision", False) is (name == "adsms-unet")
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 2**depth, 2 * 2**depth)).shape == (1, 1, 2**depth, 2 * 2**depth)


@pytest.mark.parametrize("name", UNETS)
def test_unet_defaults_are_32_filters_and_depth_4(name: str) -> None:
    model = build_model(name, 3)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert size_multiple(model) == 16
    assert convs[0].out_channels == 32
    assert max(c.out_channels for c in convs) == 32 * 2**4


@pytest.mark.parametrize("name", UNETS)
def test_unet_norm_options(name: str) -> None:
    x = torch.randn(2, 3, 32, 32)
    for norm, kind in [("group", nn.GroupNorm), ("none", nn.Conv2d)]:
        model = build_model(name, 3, base_filters=4, depth=2, norm=norm).eval()
        assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        assert any(isinstance(m, kind) for m in model.modules())
        with torch.no_grad():
            assert model(x).shape == (2, 1, 32, 32)
        # group norm takes statistics over the whole tile: no finite receptive field
        assert (receptive_field(model, 3, max_size=256) is None) is (norm == "group")
    with pytest.raises(ModelError, match="norm"):
        build_model(name, 3, norm="layer")


def test_segformer_size_multiple_and_stage_strides() -> None:
    model = build_model("segformer-b0", 5).eval()
    assert size_multiple(model) == 32
    assert not getattr(model, "deep_supervision", False)
    with torch.no_grad():
        feats = model.encoder(torch.randn(1, 5, 64, 96))
    assert [tuple(f.shape) for f in feats] == [(1, 32, 16, 24), (1, 64, 8, 12), (1, 160, 4, 6), (1, 256, 2, 3)]


@pytest.mark.parametrize("variant", sorted(MIT_PARAMS))
def test_segformer_encoder_sizes_match_the_paper(variant: str) -> None:
    with torch.device("meta"):  # sizes only, no memory or initialisation cost
        model = build_model(f"segformer-{variant}", 3)
    encoder = sum(p.numel() for p in model.encoder.parameters()) / 1e6
    assert encoder == pytest.approx(MIT_PARAMS[variant], rel=0.1)
    blocks = [len(stage.blocks) for stage in model.encoder.stages]
    expected = {"b0": [2, 2, 2, 2], "b1": [2, 2, 2, 2], "b2": [3, 4, 6, 3], "b3": [3, 4, 18, 3],
                "b4": [3, 8, 27, 3], "b5": [3, 6, 40, 3]}[variant]
    assert blocks == expected
    assert model.decoder.classify.in_channels == (256 if variant in ("b0", "b1") else 768)


def test_adsms_returns_side_outputs_only_in_training() -> None:
    model = build_model("adsms-unet", 4, base_filters=4, depth=3)
    x = torch.randn(2, 4, 32, 32)
    logits, sides = model.train()(x)
    assert logits.shape == (2, 1, 32, 32)
    assert len(sides) == 2 and all(s.shape == (2, 1, 32, 32) for s in sides)
    assert not torch.allclose(sides[0], sides[1])
    with torch.no_grad():
        out = model.eval()(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 1, 32, 32)


def synthetic_batch(n: int = 4, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random fields; the mask is where band 0 is positive (blobs a few pixels wide)."""
    coarse = torch.randn(n, 3, size // 8, size // 8)
    x = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    x = x + 0.1 * torch.randn_like(x)
    return x, (x[:, :1] > 0).float()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_few_optimiser_steps_reduce_the_loss(name: str) -> None:
    model = small(name)
    x, y = synthetic_batch()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(15):
        out = model(x)
        logits, sides = out if isinstance(out, tuple) else (out, [])
        loss = F.binary_cross_entropy_with_logits(logits, y)
        loss = loss + sum(F.binary_cross_entropy_with_logits(s, y) for s in sides)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < 0.8 * losses[0]


def outside_perturbed(x: torch.Tensor, cy: int, cx: int, half: int) -> torch.Tensor:
    """``x`` with every pixel farther than ``half`` (Chebyshev) from ``(cy, cx)`` replaced by noise."""
    noisy = x + 10 * torch.randn_like(x)
    noisy[..., cy - half:cy + half + 1, cx - half:cx + half + 1] = x[..., cy - half:cy + half + 1,
                                                                     cx - half:cx + half + 1]
    return noisy


def measured_reach(model: nn.Module, x: torch.Tensor, cy: int, cx: int, upto: int) -> int:
    """Brute force: the smallest half-width whose outside can be perturbed without changing output ``(cy, cx)``."""
    with torch.no_grad():
        ref = model(x)[0, 0, cy, cx]
        for half in range(upto + 1):
            if torch.equal(model(outside_perturbed(x, cy, cx, half))[0, 0, cy, cx], ref):
                return half
    return upto + 1


@pytest.mark.parametrize("name", UNETS)
def test_receptive_field_is_a_tight_upper_bound(name: str) -> None:
    model = small(name).eval()
    rf = receptive_field(model, 3)
    assert rf is not None and rf % 2 == 1
    half, m = (rf - 1) // 2, size_multiple(model)
    size = -(-2 * (half + 2 * m) // m) * m
    x = torch.randn(1, 3, size, size)
    worst = 0
    for dy, dx in [(0, 0), (m - 1, m - 1), (0, m - 1), (m - 1, 1)]:  # pooling phases
        cy, cx = size // 2 + dy, size // 2 + dx
        with torch.no_grad():  # exact: outside the window nothing reaches the pixel
            assert torch.equal(model(outside_perturbed(x, cy, cx, half))[0, 0, cy, cx], model(x)[0, 0, cy, cx])
        worst = max(worst, measured_reach(model, x, cy, cx, half))
    assert rf <= 2 * (2 * worst + 1)


def test_receptive_field_of_a_conv_stack_matches_the_formula() -> None:
    # reach: 1 (3x3) + 4 (5x5 dilated by 2 spans 9) + 1 (3x3 max pool) + 1 (3x3) = 7, a 15-pixel window
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 5, padding=4, dilation=2), nn.BatchNorm2d(4),
        nn.Tanh(), nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(4, 1, 3, padding=1),
    )
    assert receptive_field(model, 2) == 1 + 2 * (1 + 4 + 1 + 1)
    assert receptive_field(nn.Sequential(nn.Conv2d(2, 1, 1)), 2) == 1
    # a max that only looks right: ties must not hide the reach; a saturated clamp must not hide it either
    assert receptive_field(nn.Sequential(nn.ZeroPad2d((0, 4, 0, 0)), nn.MaxPool2d((1, 5), stride=1)), 1) == 9
    clamped = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Hardtanh(0.0, 1e-3), nn.Conv2d(1, 1, 3, padding=1))
    assert receptive_field(clamped, 1) == 5


class GatedConv(nn.Module):
    """Splits its channels in two (so the receptive field runs it at full width) and detaches a wide gate."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.out = nn.Conv2d(4, 1, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.conv(x).chunk(2, dim=1)
        wide = F.avg_pool2d(torch.sigmoid(gate), 9, stride=1, padding=4).mean(dim=1, keepdim=True)
        return self.out(value) * wide.detach()


def test_receptive_field_of_a_model_that_needs_its_channels() -> None:
    # value path reaches 1 + 2, the detached gate 1 + 4: detaching stops gradients, not dependence
    assert receptive_field(GatedConv(), 3) == 1 + 2 * (1 + 4)


def test_receptive_field_none_for_global_models() -> None:
    assert receptive_field(build_model("segformer-b0", 3), 3) is None
    spatial_norm = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GroupNorm(1, 4), nn.Conv2d(4, 1, 1))
    assert receptive_field(spatial_norm, 1, max_size=256) is None  # statistics over the whole image


def test_receptive_field_leaves_the_model_alone() -> None:
    model = small("attention-resunet").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert receptive_field(model, 3) is not None
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", UNETS)
def test_unets_are_translation_equivariant_by_their_size_multiple(name: str) -> None:
    model = small(name).eval()
    m, half = size_multiple(model), (receptive_field(model, 3) - 1) // 2
    x = torch.randn(1, 3, 160, 160)
    inner = slice(half, 96 - half)
    with torch.no_grad():
        full = model(x)
        for oy, ox in [(2 * m, m), (3 * m, 5 * m), (1, 0)]:
            crop = model(x[..., oy:oy + 96, ox:ox + 96])[..., inner, inner]
            error = (crop - full[..., oy + half:oy + 96 - half, ox + half:ox + 96 - half]).abs().max().item()
            if oy % m == 0 and ox % m == 0:
                assert error < 1e-5
            else:  # pooling phases differ: a shift of one pixel changes the output well beyond rounding
                assert error > 1e-4


def test_unknown_name_and_bad_options_raise_model_error() -> None:
    with pytest.raises(ModelError, match="unknown model"):
        build_model("no-such-net", 3)
    with pytest.raises(ModelError, match="bad options"):
        build_model("resunet", 3, filters=8)
    with pytest.raises(ModelError, match="base_filters"):
        build_model("attention-unet", 3, base_filters=0)
    with pytest.raises(ModelError, match="depth"):
        build_model("adsms-unet", 3, depth=0)
    with pytest.raises(ModelError, match="drop_path"):
        build_model("segformer-b0", 3, drop_path=1.5)
    with pytest.raises(ModelError, match="at least one"):
        build_model("segformer-b1", 0)


@pytest.mark.parametrize("upsample", ["nearest", "bilinear"])
@pytest.mark.parametrize("name", UNETS)
def test_unet_upsampling_then_convolution_option(name: str, upsample: str) -> None:
    model = build_model(name, 4, base_filters=4, depth=2, norm="none", upsample=upsample).eval()
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.modules())
    ups = [m for m in model.modules() if isinstance(m, nn.Upsample)]
    assert len(ups) == 2 and all(u.mode == upsample for u in ups)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    with torch.no_grad():
        assert model(torch.randn(2, 4, 32, 48)).shape == (2, 1, 32, 48)
    assert receptive_field(model, 4, max_size=256) is not None  # still local: tiles can be stitched exactly
    with pytest.raises(ModelError, match="upsample"):
        build_model(name, 4, upsample="pixelshuffle")


def test_segformer_starts_with_small_logits() -> None:
    """A fresh model predicts about 0.5 everywhere: the first BCE is near log 2, not several nats."""
    model = build_model("segformer-b0", 4).train()
    x = torch.randn(4, 4, 64, 64)
    y = (torch.rand(4, 1, 64, 64) < 0.3).float()
    logits = model(x)
    assert logits.std().item() < 0.5
    assert F.binary_cross_entropy_with_logits(logits, y).item() == pytest.approx(0.693, abs=0.05)
