"""Batch norm folded into the convolutions: the same probabilities as the trained model, without its BN layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from geoslide.models import build_model
from geoslide.models.card import bundled_model_path, load_checkpoint
from geoslide.models.fold import fold_batch_norm, for_inference


def _bn_layers(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_bundled_model_folded_gives_the_same_probabilities():
    model, card = load_checkpoint(bundled_model_path(), "cpu")
    x = torch.randn(2, len(card.bands), 160, 192, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        before = torch.sigmoid(model.eval()(x)).numpy()
        fast = for_inference(model, "cpu")
        after = torch.sigmoid(fast(x.contiguous(memory_format=torch.channels_last))).numpy()
        plain = torch.sigmoid(fast(x)).numpy()
    assert _bn_layers(model) > 0 and _bn_layers(fast) == 0
    assert np.abs(after - before).max() <= 1e-5 and np.abs(plain - before).max() <= 1e-5
    assert before.std() > 0.01


@pytest.mark.parametrize("architecture", ["unet", "resunet"])
def test_trained_statistics_are_folded_not_dropped(architecture):
    torch.manual_seed(1)
    model = build_model(architecture, 3, base_filters=8, depth=2)
    for m in model.modules():  # statistics far from the identity, as after training
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        np.testing.assert_allclose(fold_batch_norm(model)(x).numpy(), model(x).numpy(), atol=1e-4, rtol=1e-4)
    assert model.training is False and _bn_layers(model) > 0  # the original is untouched
