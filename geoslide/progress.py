"""Whether to show progress: yes when a person is watching, unless told otherwise.

A person is taken to be watching when standard error is a terminal or the code runs in a Jupyter
kernel; logs, pipes and CI runs stay free of progress bars. Every function of geoslide that takes
``progress`` reads ``None`` (its default) this way; ``True`` or ``False`` decide.
"""

from __future__ import annotations

import sys


def watching() -> bool:
    """True when standard error is a terminal or the code runs in a Jupyter (IPython) kernel."""
    return in_notebook() or _is_tty(sys.stderr)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython's kernel shell), False in a terminal IPython or plain Python."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and hasattr(shell, "kernel")


def show_progress(progress: bool | None) -> bool:
    """``progress`` itself when given, else :func:`watching`."""
    return watching() if progress is None else bool(progress)


def _is_tty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):  # no stream, or a closed one
        return False
