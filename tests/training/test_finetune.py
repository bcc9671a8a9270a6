"""Fine-tuning: ``geoslide train --init MODEL_DIR`` starts from a trained model's weights and normalisation."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.synthetic import synthetic_store


def _train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geoslide.cli", "train", *args], capture_output=True, text=True)


@pytest.mark.heavy
def test_init_starts_from_the_given_model_and_keeps_its_normalisation(tmp_path):
    synthetic_store(tmp_path / "a.zarr", seed=0)
    synthetic_store(tmp_path / "b.zarr", seed=1)
    base = tmp_path / "base"
    proc = _train("--patches", str(tmp_path / "a.zarr"), "--model", "unet", "--model-params",
                  '{"base_filters": 4, "depth": 2}', "--max-steps", "6", "--batch-size", "4", "--out", str(base))
    assert proc.returncode == 0, proc.stderr
    tuned = tmp_path / "tuned"
    proc = _train("--patches", str(tmp_path / "b.zarr"), "--init", str(base), "--max-steps", "1",
                  "--batch-size", "4", "--lr", "1e-12", "--out", str(tuned))
    assert proc.returncode == 0, proc.stderr
    before, after = load_file(base / "model.safetensors"), load_file(tuned / "model.safetensors")
    assert before.keys() == after.keys()
    for key in before:
        if "running" in key or "num_batches" in key:
            continue  # batch-norm statistics move with the new data, whatever the learning rate
        np.testing.assert_allclose(after[key], before[key], atol=1e-6, err_msg=key)
    cards = [json.loads((d / "model.json").read_text()) for d in (base, tuned)]
    assert cards[1]["mean"] == cards[0]["mean"] and cards[1]["std"] == cards[0]["std"]
    assert cards[1]["architecture"] == "unet" and cards[1]["params"] == {"base_filters": 4, "depth": 2}
    assert cards[1]["training"]["init"] == str(base)


@pytest.mark.heavy
def test_init_refuses_other_bands_and_other_architectures_in_one_line(tmp_path):
    synthetic_store(tmp_path / "two.zarr", n_bands=2)
    synthetic_store(tmp_path / "three.zarr", n_bands=3)
    base = tmp_path / "base"
    proc = _train("--patches", str(tmp_path / "two.zarr"), "--model", "unet", "--model-params",
                  '{"base_filters": 4, "depth": 2}', "--max-steps", "2", "--batch-size", "4", "--out", str(base))
    assert proc.returncode == 0, proc.stderr
    for extra, words in ((["--patches", str(tmp_path / "three.zarr")], "bands"),
                         (["--patches", str(tmp_path / "two.zarr"), "--model", "segformer-b0"], "leave out --model"),
                         (["--patches", str(tmp_path / "two.zarr"), "--init", "no-such-model"], "neither a model")):
        args = [*extra, "--max-steps", "1", "--batch-size", "4", "--out", str(tmp_path / "x")]
        if "--init" not in extra:
            args += ["--init", str(base)]
        proc = _train(*args)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr, proc.stderr
        assert not (tmp_path / "x").exists()
    proc = _train("--patches", str(tmp_path / "two.zarr"), "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "give --model NAME" in proc.stderr
