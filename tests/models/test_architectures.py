"""The seed papers' other architectures: any band count, training, published sizes, pretrained encoders."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F  # noqa: N812

from geoslide.errors import ModelError
from geoslide.models import build_model, size_multiple
from geoslide.models.receptive import receptive_field

# small settings of every architecture, so a CPU runs them in a blink
SMALL = {
    "deeplabv3": {"encoder": "resnet18"},
    "deeplabv3plus": {"encoder": "resnet18"},
    "pspnet": {"encoder": "resnet18"},
    "fcn8s": {"base_filters": 8, "fc_width": 32},
    "linknet": {},
    "upernet": {"encoder": "resnet18", "channels": 32},
    "resunet50": {"encoder": "resnet18", "decoder_channels": [32, 16, 16, 8, 8]},
    "hrnet": {"width": 8, "modules": [1, 1, 1], "blocks": 1},
    "swinunet": {"dim": 24, "heads": [1, 2, 3, 6], "window": 4},
}
GLOBAL = {"deeplabv3", "deeplabv3plus", "pspnet", "upernet", "swinunet"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("in_channels", [1, 5, 13])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_odd_band_counts_and_non_square_sizes(name: str, in_channels: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, in_channels, **SMALL[name]).eval()
    m = size_multiple(model)
    assert 32 % m == 0  # every encoder stride divides the patch sizes the seeds use
    x = torch.randn(2, in_channels, 64, 96 + (32 if in_channels == 13 else 0))
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 1, *x.shape[-2:]) and torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_few_optimiser_steps_reduce_the_loss(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, 3, **SMALL[name]).train()
    coarse = torch.randn(4, 3, 8, 8)
    x = F.interpolate(coarse, size=(64, 64), mode="bilinear", align_corners=False)
    y = (x[:, :1] > 0).float()
    # batch-normalised nets learn fast at 1e-3; FCN-8s (13 plain VGG convolutions, no normalisation) needs more
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3 if name == "fcn8s" else 1e-3)
    losses = []
    for _ in range(30 if name == "fcn8s" else 15):
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < 0.8 * losses[0]


def _count(name: str, **params) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(name, 3, **params).parameters())


def test_deeplabv3_resnet50_has_torchvisions_parameter_count() -> None:
    # torchvision documents deeplabv3_resnet50 (21 classes, auxiliary FCN head) at 42,004,074 parameters.
    # Without the auxiliary head (3x3 conv 1024->256, batch norm, 1x1 conv 256->21: 2,365,205) and with one
    # class instead of 21 in the last 1x1 convolution (5,397 -> 257), that is 39,633,729.
    assert _count("deeplabv3") == 42_004_074 - (1024 * 256 * 9 + 2 * 256 + 256 * 21 + 21) - (5397 - 257)


def test_resnet50_encoder_has_torchvisions_parameter_count() -> None:
    # torchvision's resnet50: 25,557,032 parameters, of which the classifier is 2048 * 1000 + 1000
    model = build_model("resunet50", 3)
    assert sum(p.numel() for p in model.encoder.parameters()) == 25_557_032 - 2_049_000


@pytest.mark.parametrize(("name", "millions", "params"), [
    ("fcn8s", 134.0, {}),          # Long et al. 2015, Table 1: FCN-VGG16, 134M
    ("linknet", 11.5, {}),         # Chaurasia and Culurciello 2017, Table 1: 11.5M
    ("hrnet", 65.9, {}),           # Wang et al. 2020, Table 4: HRNetV2-W48, 65.9M
    ("swinunet", 27.17, {}),       # Cao et al. 2022 (Swin-Unet), 27.17M
])
def test_published_parameter_counts(name: str, millions: float, params: dict) -> None:
    assert _count(name, **params) / 1e6 == pytest.approx(millions, rel=0.005)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_global_models_say_so_and_local_ones_have_a_finite_receptive_field(name: str) -> None:
    model = build_model(name, 2, **SMALL[name])
    field = receptive_field(model, 2)
    assert (field is None) is (name in GLOBAL)


def test_encoder_weights_round_trip_through_safetensors(tmp_path) -> None:
    torch.manual_seed(1)
    source = build_model("deeplabv3", 4, **SMALL["deeplabv3"])
    path = tmp_path / "encoder.safetensors"
    save_file({**source.encoder.state_dict(), "fc.weight": torch.zeros(10, 512)}, str(path))  # extra keys ignored
    torch.manual_seed(2)
    loaded = build_model("deeplabv3", 4, encoder_weights=str(path), **SMALL["deeplabv3"])
    for key, value in source.encoder.state_dict().items():
        assert torch.equal(loaded.encoder.state_dict()[key], value), key
    assert not torch.equal(loaded.head[-1].weight, source.head[-1].weight)  # only the encoder is loaded


def test_encoder_weights_for_another_band_count_keep_a_flat_inputs_response(tmp_path) -> None:
    torch.manual_seed(1)
    rgb = build_model("linknet", 3)
    path = tmp_path / "rgb.safetensors"
    save_file(rgb.encoder.state_dict(), str(path))
    bands14 = build_model("linknet", 14, encoder_weights=str(path))
    flat3, flat14 = torch.full((1, 3, 32, 32), 0.7), torch.full((1, 14, 32, 32), 0.7)
    with torch.no_grad():
        assert torch.allclose(rgb.encoder.conv1(flat3), bands14.encoder.conv1(flat14), atol=1e-5)
        assert torch.equal(rgb.encoder.layer4[0].conv1.weight, bands14.encoder.layer4[0].conv1.weight)


def test_bad_encoder_weights_are_refused(tmp_path) -> None:
    pickled = tmp_path / "weights.pt"
    torch.save(build_model("linknet", 3).encoder.state_dict(), pickled)
    with pytest.raises(ModelError, match="not a safetensors file"):
        build_model("linknet", 3, encoder_weights=str(pickled))
    other = tmp_path / "other.safetensors"
    save_file(build_model("resunet50", 3).encoder.state_dict(), str(other))
    with pytest.raises(ModelError, match="has shape|lacks"):
        build_model("linknet", 3, encoder_weights=str(other))
    with pytest.raises(ModelError, match="no encoder weights file"):
        build_model("linknet", 3, encoder_weights=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ModelError, match="no encoder"):
        build_model("unet", 3, encoder_weights=str(other))


def test_deeplab_keeps_output_stride_8_and_16() -> None:
    v3, plus = build_model("deeplabv3", 3, **SMALL["deeplabv3"]), build_model("deeplabv3plus", 3, **SMALL["deeplabv3"])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert v3.eval().encoder(x)[-1].shape[-1] == 8
        assert plus.eval().encoder(x)[-1].shape[-1] == 4
    assert any(isinstance(m, nn.Conv2d) and m.dilation == (36, 36) for m in v3.modules())
