"""Build geoslide's API reference as HTML with pdoc.

Usage: ``python docs/build.py [OUT]`` (default ``docs/api``); open ``OUT/index.html``. Every public
module is rendered (``geoslide`` and each stage package with its modules; names starting with
``_`` are left out), numpy-style docstrings included. ``tests/test_docs.py`` builds it with Python
warnings turned into errors.
"""

from __future__ import annotations

import pkgutil
import sys
from pathlib import Path

import pdoc
import pdoc.extract
import pdoc.render

import geoslide


def public_modules() -> list[str]:
    """``geoslide`` and every module under it whose dotted name has no part starting with ``_``."""
    found = pkgutil.walk_packages(geoslide.__path__, "geoslide.")
    return ["geoslide", *sorted(m.name for m in found if not any(p.startswith("_") for p in m.name.split(".")))]


def specs() -> list[str]:
    """The modules to name to pdoc: each public module that no package named before already brings.

    pdoc walks a package's submodules itself unless the package's ``__all__`` leaves them out;
    naming a module twice is a warning.
    """
    named: list[str] = []
    covered: set[str] = set()
    for name in public_modules():
        if name not in covered:
            named.append(name)
            covered.update(pdoc.extract.walk_specs([name]))
    return named


def build(out: Path) -> Path:
    """Render the reference into ``out``; returns its ``index.html``."""
    pdoc.render.configure(docformat="numpy", footer_text=f"geoslide {geoslide.__version__}", search=True)
    pdoc.pdoc(*specs(), output_directory=out)
    return out / "index.html"


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "api"))
