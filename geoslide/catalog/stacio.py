"""STAC JSON read and written through :mod:`geoslide.fileio`: local files, ``s3://`` and ``http(s)://``.

pystac's own reader opens local files and HTTP only, and writes local files only; this one reads
and writes whatever :mod:`geoslide.fileio` does, with its one-line errors and its atomic writes.
"""

from __future__ import annotations

from pystac.stac_io import DefaultStacIO

from geoslide.fileio import location, read_text, write_text


class FileioStacIO(DefaultStacIO):
    """A pystac StacIO over :mod:`geoslide.fileio`."""

    def read_text_from_href(self, href: str) -> str:
        """The text at ``href`` (a path, ``file://``, ``s3://`` or ``http(s)://`` URL)."""
        return read_text(href)

    def write_text_to_href(self, href: str, txt: str) -> None:
        """Write ``txt`` to ``href`` atomically, creating local parent folders."""
        loc = location(href, write=True)
        if not isinstance(loc, str):
            loc.parent.mkdir(parents=True, exist_ok=True)
        write_text(loc, txt)


def stac_io() -> FileioStacIO:
    """A StacIO for reading catalogs and writing items wherever geoslide can."""
    return FileioStacIO()
