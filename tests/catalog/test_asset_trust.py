"""The catalog trust policy: asset hrefs outside a catalog's own places are refused before any work starts.

Each catalog here is a real items.json next to a real COG (a copy of the bundled demo's); only the
asset href changes. A refused href is a one-line error (exit 2) that names the href and the option
that allows it, and nothing is written; the same catalog with its COG inside it is searched and mapped.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from geoslide.catalog.bundled import demo_catalog_path
from geoslide.catalog.search import search
from geoslide.catalog.trust import ENV_VAR, allow_assets
from geoslide.cli import main
from geoslide.errors import CatalogError

ITEM = "demo-quake-planetscope-post"


def _catalog(folder, href):
    """items.json in ``folder`` with the demo item, its image asset pointing at ``href``."""
    item = next(i for i in search({"ids": [ITEM]}))
    d = item.to_dict(include_self_link=False, transform_hrefs=False)
    d["assets"] = {"image": {**d["assets"]["image"], "href": href}}
    d["links"] = []
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": [d]}))
    return folder / "items.json"


def _demo_cog():
    return search({"ids": [ITEM]})[0].assets["image"].get_absolute_href()


def _run(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


REFUSED = {
    "absolute-outside": lambda tmp: _demo_cog(),
    "file-url-outside": lambda tmp: "file:///etc/passwd",
    "dotdot-outside": lambda tmp: "../outside.tif",
    "symlink-outside": lambda tmp: "link.tif",
    "gdal-vsi": lambda tmp: "/vsicurl/http://169.254.169.254/latest/meta-data",
    "gdal-vrt": lambda tmp: "vrt:///etc/passwd?bands=1",
    "ftp": lambda tmp: "ftp://example.org/x.tif",
    "aws-metadata": lambda tmp: "http://169.254.169.254/latest/meta-data/iam/x.tif",
    "aws-metadata-v6": lambda tmp: "http://[fd00:ec2::254]/latest/x.tif",
    "gcp-metadata": lambda tmp: "http://metadata.google.internal/computeMetadata/v1/x.tif",
    "mapped-v6-metadata": lambda tmp: "http://[::ffff:169.254.169.254]/x.tif",
    "loopback": lambda tmp: "http://127.0.0.1:9/x.tif",
    "private": lambda tmp: "https://10.0.0.7/x.tif",
    "localhost": lambda tmp: "http://localhost:8080/x.tif",
    "other-bucket": lambda tmp: "s3://someone-elses-bucket/x.tif",
    "unresolvable": lambda tmp: "https://internal-service.invalid/x.tif",
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_untrusted_hrefs_are_refused_in_one_line_and_nothing_is_written(tmp_path, capsys, case):
    (tmp_path / "outside.tif").write_bytes(b"secret")
    catalog = _catalog(tmp_path / "cat", REFUSED[case](tmp_path))
    os.symlink(tmp_path / "outside.tif", tmp_path / "cat" / "link.tif")
    before = sorted(tmp_path.rglob("*"))
    workers = ["--workers", "1"] if case == "aws-metadata" else []  # refused before a task reaches a worker
    code, err = _run(capsys, "map", "--catalog", str(catalog), "--out", str(tmp_path / "m.zarr"), *workers)
    assert code == 2 and len(err) == 1, err
    assert "asset href" in err[0] and ("--allow-assets" in err[0] or "fix the catalog" in err[0]), err
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("href, allow", [
    ("http://169.254.169.254/latest/x.tif", "http://169.254.169.254"),
    ("http://[fd00:ec2::254]/x.tif", "http://[fd00:ec2::254]"),
])
def test_metadata_addresses_stay_refused_even_when_allowed(tmp_path, href, allow):
    catalog = _catalog(tmp_path, href)
    with pytest.raises(CatalogError, match="link-local or cloud metadata"):
        with allow_assets([allow]):
            search({}, str(catalog))


def test_the_option_and_the_environment_allow_a_folder_or_host(tmp_path, capsys, monkeypatch):
    outside = _demo_cog()
    catalog = _catalog(tmp_path / "cat", outside)
    code, err = _run(capsys, "search", "--catalog", str(catalog))
    assert code == 2 and "--allow-assets" in err[0] and outside in err[0]
    code, _ = _run(capsys, "search", "--catalog", str(catalog), "--allow-assets", os.path.dirname(outside))
    assert code == 0
    monkeypatch.setenv(ENV_VAR, f"http://127.0.0.1:9, {os.path.dirname(os.path.dirname(outside))}")
    assert [i.id for i in search({}, str(catalog))] == [ITEM]
    monkeypatch.delenv(ENV_VAR)
    loop = _catalog(tmp_path / "loop", "http://127.0.0.1:9/x.tif")
    with pytest.raises(CatalogError, match="private or unresolvable"):
        search({}, str(loop))
    with allow_assets(["http://127.0.0.1:9"]):
        assert len(search({}, str(loop))) == 1
    with allow_assets(["http://127.0.0.1:9/other/"]), pytest.raises(CatalogError):
        search({}, str(loop))  # a path prefix allows that path only


def test_a_catalog_with_its_assets_inside_it_is_searched_and_mapped(tmp_path, capsys):
    shutil.copy(_demo_cog(), tmp_path / "image.tif")
    catalog = _catalog(tmp_path, "./image.tif")
    out = tmp_path / "out" / "m.zarr"
    code, err = _run(capsys, "map", "--catalog", str(catalog), "--out", str(out), "--device", "cpu",
                     "--no-quicklook")
    assert code == 0, err
    assert (out / "zarr.json").is_file()


def test_the_bundled_catalog_is_trusted():
    assert len(search({})) > 10
    assert demo_catalog_path().is_file()
