"""Errors qmriprep reports to users.

Every problem with the input data is an :class:`InputError` that names the file and what is
wrong with it; the CLI prints the one message and exits with :data:`EXIT_INPUT`.
"""

from __future__ import annotations

from pathlib import Path

#: exit code for bad input (sysexits EX_DATAERR)
EXIT_INPUT = 65
#: exit code for a failure while processing (a node crashed)
EXIT_PROCESSING = 1
#: exit code for a bad command line (argparse convention)
EXIT_USAGE = 2


class InputError(ValueError):
    """A problem with the user's input, reported as ``<file>: <problem>``."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")
