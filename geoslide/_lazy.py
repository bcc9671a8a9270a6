"""Public names of a package imported on first use (PEP 562).

A package's ``__init__`` that imported its heavy modules eagerly made every import of any of its
modules pay for them: ``geoslide map --epsg 0`` loaded torch and xarray to refuse an option.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, where: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` that import each name's module when first asked for.

    Parameters
    ----------
    package
        The package's ``__name__``.
    where
        Public name -> the module that defines it.

    Examples
    --------
    In a package's ``__init__.py``::

        __getattr__, __dir__ = lazy_exports(__name__, {"run_map": "geoslide.mapping.job"})
    """

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__
