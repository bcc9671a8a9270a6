"""``geoslide ARGS`` run inside the test process, answered as a fresh process would answer it.

A CLI subprocess spends seconds importing torch, xarray and rasterio before it maps a tile; the
tests that map many small tiles call :func:`geoslide.cli.main` here instead. What a user sees is
kept: the exit status (argparse's too), stdout, and stderr with geoslide's warnings printed as the
CLI prints them, once per place, under Python's default warning filters (pytest would otherwise
collect them). The journeys that must run as real processes (killed, on clusters, from the
README) keep their subprocesses.
"""

from __future__ import annotations

import io
import subprocess
import sys
import warnings
from contextlib import redirect_stderr, redirect_stdout

from geoslide.cli import main

#: Python's own default filters (``python -W`` unset, a release build): what a fresh process shows.
_PYTHON_DEFAULTS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def _show(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def run_cli(*args: object) -> subprocess.CompletedProcess:
    """Run ``geoslide ARGS`` in this process; returns what :func:`subprocess.run` would."""
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    formatting = warnings.formatwarning  # main() sets geoslide's one-line form; the tests' own stays
    with warnings.catch_warnings(), redirect_stdout(out), redirect_stderr(err):
        warnings.resetwarnings()
        for category in _PYTHON_DEFAULTS:
            warnings.simplefilter("ignore", category)
        warnings.showwarning = _show
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: --help, usage errors
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            warnings.formatwarning = formatting
    return subprocess.CompletedProcess(["geoslide", *argv], code, out.getvalue(), err.getvalue())
