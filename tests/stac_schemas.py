"""Offline STAC validation for the tests: core 1.1.0 (bundled in pystac) and the extensions geoslide writes.

The extension schemas are not in pystac and the network is closed. projection/eo/raster v2.0.0,
raster v1.1.0, classification v2.0.0 and processing v1.2.0 are taken from the ``eopf==2.8.1`` wheel
on PyPI (digest pinned below), which carries copies of them; they land in ``tools/stac-schemas``
(git-ignored) on first use. label, file and mlm (and the classification/processing v1.1.0 that mlm
refers to) are on no PyPI package: ``tests/fixtures/stac-schemas`` holds the official files, each
checked against the sha256 in its ``SOURCES.md``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pystac
import pystac.serialization
from pystac.validation.stac_validator import GetSchemaError, JsonSchemaSTACValidator

WHEEL = "eopf==2.8.1"
WHEEL_SHA256 = "f4450ba7fd2cb8f52bfca8aada6e992751c036d059d94ee0f7422637d9ae0307"
MEMBERS = [f"eopf/product/stac_extensions/extensions/{n}.json" for n in (
    "projection_v2.0.0", "eo_v2.0.0", "raster_v2.0.0", "raster_v1.1.0", "classification_v2.0.0",
    "processing_v1.2.0")]
CACHE = Path(__file__).resolve().parents[1] / "tools" / "stac-schemas"
VENDORED = Path(__file__).resolve().parent / "fixtures" / "stac-schemas"


def fetch_schemas() -> Path:
    """Make sure the extension schemas are in :data:`CACHE`; returns that folder."""
    if all((CACHE / Path(m).name).is_file() for m in MEMBERS):
        return CACHE
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, WHEEL],
                       check=True, capture_output=True)
        wheel = next(Path(tmp).glob("eopf-*.whl"))
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            raise RuntimeError(f"{wheel.name} has sha256 {digest}, expected {WHEEL_SHA256}")
        CACHE.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf:
            for member in MEMBERS:
                (CACHE / Path(member).name).write_bytes(zf.read(member))
    return CACHE


def vendored_schemas() -> list[Path]:
    """The schema files of :data:`VENDORED`, each checked against the sha256 its ``SOURCES.md`` lists."""
    rows = [line.split("|") for line in (VENDORED / "SOURCES.md").read_text().splitlines()
            if line.startswith("| ") and line.split("|")[1].strip().endswith(".json")]
    paths = []
    for row in rows:
        path, expected = VENDORED / row[1].strip(), row[5].strip()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != expected:
            raise RuntimeError(f"{path.name} has sha256 {digest}, SOURCES.md says {expected}")
        paths.append(path)
    return paths


def _url_of(path: Path) -> str:
    """``label_v1.0.1.json`` -> the extension's schema URL (not the file's ``$id``, which can be wrong)."""
    name, version = path.stem.rsplit("_", 1)
    return f"https://stac-extensions.github.io/{name}/{version}/schema.json"


class OfflineValidator(JsonSchemaSTACValidator):
    """pystac's JSON-schema validator with local extension schemas and no network."""

    def __init__(self, schema_dir: Path) -> None:
        super().__init__()
        for path in [*schema_dir.glob("*.json"), *vendored_schemas()]:
            schema = json.loads(path.read_text())
            self.schema_cache[_url_of(path)] = schema
            self.schema_cache.setdefault(schema["$id"].rstrip("#"), schema)  # for the schema's own "#/..." refs
        proj = Path(__import__("pyproj").datadir.get_data_dir()) / "projjson.schema.json"
        if proj.is_file():
            schema = json.loads(proj.read_text())
            self.schema_cache[schema["$id"].rstrip("#")] = schema

    def _get_schema(self, schema_uri: str) -> dict[str, Any]:
        key = schema_uri.rstrip("#")
        if key not in self.schema_cache:
            raise GetSchemaError(schema_uri, LookupError("schema not available offline"))
        return self.schema_cache[key]

    def check(self, d: dict[str, Any], skip: tuple[str, ...] = ()) -> list[str]:
        """Schemas ``d`` was validated against; raises ``pystac.STACValidationError`` if invalid."""
        info = pystac.serialization.identify_stac_object(d)
        version = str(info.version_range.latest_valid_version())
        done = [self.validate_core(d, info.object_type, version)]
        for ext in d.get("stac_extensions", []):
            if ext not in skip:
                done.append(self.validate_extension(d, info.object_type, version, ext))
        return [u for u in done if u]
