"""Dataset tables of the seed papers, from a patch store (see :func:`geoslide.data.stats.stats_by`).

- ``dataset`` (HR-GLDD Table 1): per event, patches, study area in km2, landslide regions in the
  masks (8-connected, cut at patch edges) with their smallest and largest area, total landslide
  area in km2 and the landslide pixel share;
- ``band-means`` (Landslide4Sense Fig. 7): per split, patches, the landslide pixel share, and the
  mean of every band over landslide and over background pixels.
"""

from __future__ import annotations

import pandas as pd

from geoslide.data.stats import stats_by
from geoslide.data.store import PatchStore


def dataset_tables(names: tuple[str, ...], store: PatchStore) -> dict[str, pd.DataFrame]:
    """The requested tables by name, in the order asked."""
    makers = {"dataset": dataset_table, "band-means": band_means_table}
    return {name: makers[name](store) for name in names}


def dataset_table(store: PatchStore) -> pd.DataFrame:
    """One row per event and one for all: the HR-GLDD Table 1 columns (see the module docstring)."""
    rows = [_dataset_row(name, st) for name, st in stats_by(store, "event").items()]
    rows += [_dataset_row("all", st) for st in stats_by(store, None).values()]
    return pd.DataFrame(rows)


def _dataset_row(name: str, st: dict) -> dict:
    return {"event": name, "patches": st["patches"], "study_area_km2": st.get("study_area_km2"),
            "landslides": st["regions"], "min_landslide_m2": st["region_min_m2"],
            "max_landslide_m2": st["region_max_m2"], "landslide_area_km2": st["landslide_area_km2"],
            "landslide_pct": None if st["landslide_ratio"] is None else 100 * st["landslide_ratio"]}


def band_means_table(store: PatchStore) -> pd.DataFrame:
    """Per split and class (landslide, background): patches, landslide pixel share and every band's mean."""
    rows = []
    for split, st in stats_by(store, "split").items():
        share = None if st["landslide_ratio"] is None else 100 * st["landslide_ratio"]
        for cls in ("landslide", "background"):
            rows.append({"split": split or "(none)", "class": cls, "patches": st["patches"], "landslide_pct": share,
                         **st["band_means"][cls]})
    return pd.DataFrame(rows)
