"""The installed geoslide version, read from the package metadata (not from the package root)."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version

UNKNOWN = "0+unknown"  # running from a source tree without installation


@cache
def version() -> str:
    """The version of the installed ``geoslide`` distribution, or ``0+unknown`` without one."""
    try:
        return _distribution_version("geoslide")
    except PackageNotFoundError:
        return UNKNOWN
