"""The example notebook runs top to bottom in a Jupyter kernel, as a person would run it."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "map-the-demo-event.ipynb"


def _outputs(cell) -> str:
    return "\n".join(o.get("text", "") + json.dumps(o.get("data", {})) for o in cell.get("outputs", []))


def test_the_example_notebook_searches_maps_shows_and_scores_the_demo_event(tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "demo-quake-planetscope-post" in _outputs(code[1])
    mapping = _outputs(code[2])
    # a kernel is a person watching: the progress bar shows by default (a widget with ipywidgets, else text)
    assert "map:" in mapping and ("100%" in mapping or "application/vnd.jupyter.widget-view+json" in mapping)
    assert "IProgress not found" not in mapping
    assert {"quake.zarr", "quake.mask.tif", "quake.mask.qml", "quake-landslides.parquet",
            "quake-landslides.geojson"} <= {p.name for p in tmp_path.iterdir()}
    leaflet = _outputs(code[4])
    assert "text/html" in leaflet and "leaflet" in leaflet.lower() and "mapped landslides" in leaflet
    scores = _outputs(code[5])
    assert "f1" in scores and "n_detected" in scores
