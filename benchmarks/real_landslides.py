"""F1 of RGB models on REAL landslide imagery with hand-drawn masks, through ``geoslide map --tiles``.

The imagery is not in the repository (most of it may not be redistributed): point ``--data`` at a
folder holding one sub-folder per set, each with a ``files.csv`` listing ``image,mask`` pairs
(paths relative to the set), as collected for this project from public releases:

- ``sichuan_aerial``: aerial orthophotos, Wenchuan / Lushan / Jiuzhaigou earthquakes (CC BY 4.0)
- ``bijie_triplesat``: TripleSat, Bijie rainfall landslides (licence unknown: measurement only)
- ``hokkaido_iburi_cas``: CAS dataset, 2018 Iburi earthquake (CC BY-NC 4.0: measurement only)
- ``coseismic_xiaoao``: coseismic landslides in forest, hand-labelled (no licence: measurement only)

or any folder of ``images/NAME.*`` and ``masks/NAME.*`` (e.g. ``pipelines/data/sichuan-aerial/test``,
the Sichuan tiles the bundled RGB model never trained on: ``--data pipelines/data/sichuan-aerial
--sets test``).

Masks are binarised as any non-zero value (the sets colour their masks); images keep their first
three bands (R, G, B). Pixel-level precision, recall, F1 and the share of landslide-free pixels
mapped as landslide are pooled over each set's tiles. Run::

    python benchmarks/real_landslides.py --data ../extra/real-landslides --model rgb
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

SETS = ("sichuan_aerial", "bijie_triplesat", "hokkaido_iburi_cas", "coseismic_xiaoao")


def stage(src: Path, dst: Path) -> int:
    """Write ``src``'s pairs as ``dst/images/N.png`` (RGB) and ``dst/masks/N.png`` (0/1); returns their count."""
    (dst / "images").mkdir(parents=True)
    (dst / "masks").mkdir()
    pairs = _pairs(src)
    for n, (image, mask) in enumerate(pairs):
        rgb = np.asarray(Image.open(src / image))[..., :3]
        truth = np.asarray(Image.open(src / mask).convert("L")) > 0
        Image.fromarray(rgb).save(dst / "images" / f"{n:03d}.png")
        Image.fromarray(truth.astype(np.uint8)).save(dst / "masks" / f"{n:03d}.png")
    return len(pairs)


def _pairs(src: Path) -> list[tuple[str, str]]:
    """``files.csv``'s image,mask pairs, else ``images/NAME.*`` with ``masks/NAME.*``."""
    if (src / "files.csv").exists():
        with open(src / "files.csv", newline="") as f:
            return [(row["image"], row["mask"]) for row in csv.DictReader(f)]
    masks = {p.stem: p for p in (src / "masks").iterdir()}
    return [(str(p.relative_to(src)), str(masks[p.stem].relative_to(src)))
            for p in sorted((src / "images").iterdir()) if p.stem in masks]


def score(tiles: Path, model: str, out: Path) -> dict[str, float]:
    """Map ``tiles`` with ``model`` and pool the per-tile confusion counts of ``summary.csv``."""
    cmd = [sys.executable, "-m", "geoslide.cli", "map", "--tiles", str(tiles), "--model", model, "--out", str(out),
           "--mask-values", "0,1"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr.strip().splitlines()[-1])
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    tp, fp, fn, tn = (sum(float(r[k]) for r in rows) for k in ("tp", "fp", "fn", "tn"))
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {"tiles": len(rows), "precision": precision, "recall": recall, "f1": f1,
            "false_alarm_share": fp / (fp + tn), "truth_share": (tp + fn) / (tp + fp + fn + tn)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with the sets' sub-folders")
    parser.add_argument("--model", action="append", required=True, help="model directory or bundled name")
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets:
            if not (args.data / name).is_dir():
                print(f"skipping {name}: no {args.data / name}", file=sys.stderr)
                continue
            stage(args.data / name, Path(tmp) / name)
            for model in args.model:
                out = Path(tmp) / f"{name}-{len(results)}"
                results.append({"set": name, "model": model, **score(Path(tmp) / name, model, out)})
                print(json.dumps(results[-1]), flush=True)
    print("\n| set | model | tiles | precision | recall | F1 | false alarms | landslide share |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['set']} | {r['model']} | {r['tiles']} | {r['precision']:.2f} | {r['recall']:.2f} | "
              f"{r['f1']:.2f} | {100 * r['false_alarm_share']:.1f} % | {100 * r['truth_share']:.1f} % |")


if __name__ == "__main__":
    main()
