"""Where the catalogs shipped with geoslide live (the bundled demo is the default)."""

from __future__ import annotations

from pathlib import Path

from geoslide.errors import CatalogError

DEMO_NAME = "demo"
#: How ``catalogs/demo`` was made: ``geoslide demo --out catalogs/demo --seed 0 --size-m 2000``
DEMO_RECIPE = {"seed": 0, "size_m": 2000.0, "events": ("demo-quake", "demo-storm")}


def catalogs_dir() -> Path:
    """Folder holding the shipped catalogs: inside the wheel, or ``catalogs/`` of a source checkout."""
    here = Path(__file__).resolve().parents[1]  # the geoslide package folder
    for candidate in (here / "_catalogs", here.parent / "catalogs"):
        if candidate.is_dir():
            return candidate
    raise CatalogError(
        "the bundled catalogs are missing from this installation; reinstall geoslide or pass --catalog"
    )


def demo_catalog_path() -> Path:
    """Path of the bundled demo catalog's ``catalog.json``."""
    path = catalogs_dir() / DEMO_NAME / "catalog.json"
    if not path.is_file():
        raise CatalogError(
            f"bundled demo catalog not found at {path}; regenerate it with "
            "`geoslide demo --out catalogs/demo --seed 0 --size-m 2000` or pass --catalog"
        )
    return path
