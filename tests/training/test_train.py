"""The training loop on a small learnable store: learning, files, determinism, resume, stopping."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from inprocess import run_cli
from safetensors.torch import load_file
from synthetic import synthetic_store

from geoslide.data.store import PatchStore
from geoslide.errors import ConfigError, ModelError, PatchStoreError
from geoslide.models.card import load_checkpoint, read_card
from geoslide.training import TrainSpec
from geoslide.training.loop import fit

SMALL = {"base_filters": 4, "depth": 2}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return synthetic_store(tmp_path_factory.mktemp("train") / "s.zarr", n=40, size=32)


def _spec(**kw):
    base = {"model": "unet", "model_params": SMALL, "epochs": 3, "batch_size": 8, "lr": 1e-2, "loss": "bce+dice",
            "patience": None}
    return TrainSpec(**{**base, **kw})


def _weights(out):
    return load_file(str(_state_file(out)))


def test_fit_learns_and_writes_a_loadable_checkpoint(store, tmp_path):
    summary = fit(store.path, _spec(epochs=12), tmp_path)
    log = pd.read_csv(tmp_path / "metrics.csv")
    assert list(log["epoch"]) == list(range(12))
    assert summary["val_f1"] > 0.8 and summary["val_f1"] == pytest.approx(log["val_f1"].max())
    card = read_card(tmp_path)
    best = log.loc[log["val_f1"].idxmax()]
    assert card.threshold == pytest.approx(best["threshold"]) and card.training["epoch"] == best["epoch"]
    assert card.bands == ("b0", "b1") and card.patch_size == 32 and card.resolution == 3.0
    assert card.receptive_field and card.receptive_field > 1
    train_rows = store.meta()["split"] == "train"
    images = store.images().compute()[train_rows.to_numpy()]
    np.testing.assert_allclose(card.mean, np.nanmean(images, axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(card.std, np.nanstd(images, axis=(0, 2, 3)), rtol=1e-4)
    assert (tmp_path / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model, _ = load_checkpoint(tmp_path)
    assert not model.training
    assert json.loads((tmp_path / "model.json").read_text())["format"] == "geoslide-model/1"


def test_same_seed_gives_identical_weights_and_another_seed_does_not(store, tmp_path):
    runs = [fit(store.path, _spec(epochs=2, seed=s), tmp_path / f"r{i}") for i, s in enumerate((3, 3, 4))]
    assert runs[0] == {**runs[1], "model_dir": runs[0]["model_dir"]}
    a, b, c = (_weights(tmp_path / f"r{i}") for i in range(3))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_an_interrupted_run_resumes_to_the_same_weights(store, tmp_path):
    fit(store.path, _spec(epochs=4), tmp_path / "whole")

    def interrupt(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(store.path, _spec(epochs=4), tmp_path / "cut", on_epoch=interrupt)
    assert len(pd.read_csv(tmp_path / "cut" / "metrics.csv")) == 2
    fit(store.path, _spec(epochs=4), tmp_path / "cut")
    whole, cut = _weights(tmp_path / "whole"), _weights(tmp_path / "cut")
    assert all(torch.equal(whole[k], cut[k]) for k in whole)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "whole" / "metrics.csv").drop(columns="seconds"),
                                  pd.read_csv(tmp_path / "cut" / "metrics.csv").drop(columns="seconds"))


def test_resuming_with_other_options_is_refused(store, tmp_path):
    fit(store.path, _spec(epochs=1), tmp_path)
    with pytest.raises(ModelError, match="other training options"):
        fit(store.path, _spec(epochs=1, lr=1e-3), tmp_path)


def test_early_stopping_ends_patience_epochs_after_the_best(store, tmp_path):
    summary = fit(store.path, _spec(epochs=40, lr=1e-9, patience=2), tmp_path)
    assert summary["epochs"] == summary["best_epoch"] + 1 + 2 < 40


@pytest.mark.parametrize("select", ["loss", "last"])
def test_select_keeps_the_epoch_of_lowest_validation_loss_or_the_last(store, tmp_path, select):
    summary = fit(store.path, _spec(epochs=5, select=select), tmp_path)
    log = pd.read_csv(tmp_path / "metrics.csv")
    epoch = int(log["val_loss"].idxmin()) if select == "loss" else 4
    assert epoch != log["val_f1"].idxmax()  # this run's best F1 is another epoch: the rule is what picks it
    assert read_card(tmp_path).training["epoch"] == summary["best_epoch"] == epoch
    assert summary["val_loss"] == pytest.approx(log["val_loss"][epoch])
    if select == "last":  # the kept weights are the final state's
        kept, last = load_file(str(tmp_path / "model.safetensors")), _weights(tmp_path)
        assert all(torch.equal(kept[k], last[f"model.{k}"]) for k in kept)


def test_select_takes_only_known_rules():
    with pytest.raises(ConfigError, match="select must be one of f1, loss, last"):
        _spec(select="val_iou")


def test_deep_supervision_model_trains_with_the_adsms_loss(store, tmp_path):
    summary = fit(store.path, _spec(model="adsms-unet", loss="adsms", epochs=1), tmp_path)
    assert np.isfinite(summary["val_loss"])
    assert read_card(tmp_path).architecture == "adsms-unet"


def test_max_steps_ends_training(store, tmp_path):
    summary = fit(store.path, _spec(epochs=50, max_steps=5), tmp_path)
    assert summary["steps"] == 5 and summary["epochs"] == 2  # 24 training patches / 8 = 3 steps per epoch


def test_bad_options_and_stores_are_refused(store, tmp_path):
    with pytest.raises(ConfigError, match="optimiser"):
        _spec(optimiser="lbfgs")
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainSpec.from_dict({"model": "unet", "learning_rate": 1})
    empty = PatchStore.create(tmp_path / "empty.zarr", ["b0"], 32)
    with pytest.raises(PatchStoreError, match="no patches with split 'train'"):
        fit(empty.path, _spec(), tmp_path / "out")
    with pytest.raises(ModelError, match="unknown model"):
        fit(store.path, _spec(model="vgg"), tmp_path / "out2")


def test_state_files_are_replaced_consistently(store, tmp_path):
    fit(store.path, _spec(epochs=2), tmp_path)
    last = tmp_path / "last"
    info = json.loads((last / "state.json").read_text())
    assert sorted(p.name for p in last.glob("state-*.safetensors")) == [info["tensors"]]
    assert info["tensors"] == f"state-{info['info']['step']}.safetensors"


def _state_file(out):
    """The tensors file that ``OUT/last/state.json`` names."""
    return out / "last" / json.loads((out / "last" / "state.json").read_text())["tensors"]


def _cli_train(store_path, out, *extra):
    return run_cli("train", "--patches", store_path, "--model", "unet", "--model-params", json.dumps(SMALL),
                   "--epochs", "1", "--out", out, *extra)


def _one_error_line(done) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_training_that_cannot_fill_one_batch_is_refused_before_model_dir_is_made(tmp_path):
    """6 training patches (of 10) and the default global batch of 16: no optimiser step could be taken."""
    small = synthetic_store(tmp_path / "small.zarr", n=10, size=32)
    out = tmp_path / "models" / "m"
    line = _one_error_line(_cli_train(small.path, out))
    assert "6 training patches" in line and "16" in line
    assert "--batch-size" in line and "--stride" in line
    assert not out.exists() and not out.parent.exists()
    with pytest.raises(PatchStoreError, match="6 training patches"):
        fit(small.path, _spec(batch_size=7), out)
    assert not out.exists()
    summary = json.loads(_cli_train(small.path, out, "--batch-size", "6").stdout)
    assert summary["steps"] == 1 and (out / "model.safetensors").is_file()


def test_an_empty_validation_split_is_refused_before_model_dir_is_made(tmp_path):
    store = synthetic_store(tmp_path / "s.zarr", n=20, size=32)
    store.set_column("split", np.where(np.arange(20) < 15, "train", "test"))
    out = tmp_path / "m"
    line = _one_error_line(_cli_train(store.path, out, "--batch-size", "4"))
    assert "no validation patches" in line and "train 15, test 5" in line
    assert not out.exists()


def test_max_steps_must_allow_one_step():
    with pytest.raises(ConfigError, match="max_steps"):
        _spec(max_steps=0)


def test_single_source_training_uses_that_sensors_patches_only(store, tmp_path):
    meta = store.meta()
    fit(store.path, _spec(epochs=1, sensors=("uav",)), tmp_path)
    card = read_card(tmp_path)
    expected = int(((meta["split"] == "train") & (meta["sensor"] == "uav")).sum())
    assert card.training["n_train"] == expected < int((meta["split"] == "train").sum())
    with pytest.raises(PatchStoreError, match="no patches of sensors"):
        fit(store.path, _spec(sensors=("drone",)), tmp_path / "x")


def test_a_pretrained_encoder_file_is_not_needed_to_load_the_trained_model(store, tmp_path):
    from safetensors.torch import save_file

    from geoslide.models import build_model

    params = {"encoder": "resnet18", "decoder_channels": [8, 8, 8, 8, 8]}
    weights = tmp_path / "encoder.safetensors"
    save_file(build_model("resunet50", 2, **params).encoder.state_dict(), str(weights))
    fit(store.path, _spec(model="resunet50", model_params={**params, "encoder_weights": str(weights)}, epochs=1),
        tmp_path / "m")
    weights.unlink()
    assert "encoder_weights" not in read_card(tmp_path / "m").params
    model, _ = load_checkpoint(tmp_path / "m")
    assert model(torch.randn(1, 2, 32, 32)).shape == (1, 1, 32, 32)
