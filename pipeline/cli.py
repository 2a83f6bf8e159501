"""Command-line wrappers: every failure a user can act on is one line on stderr and an exit code.

``error: <what, where, the fix>``, exit 2 for the user's params, data or options (:class:`UserError`), exit 3
for a fault around the project (a tracking server, a store, the file system; :mod:`pipeline.failures`),
130 when interrupted. Anything else is a bug and keeps its traceback. A base module: a stage
(:mod:`pipeline.stage`), a sweep and a paradigm's own command (the labelling tool, the Flower app) all wrap
their ``main`` here.
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Callable, NoReturn

from pipeline.credentials import masked
from pipeline.errors import OutsideFault, UserError
from pipeline.failures import FAULT_EXIT, INTERRUPTED_EXIT, USER_ERROR_EXIT, describe


class ArgumentParser(argparse.ArgumentParser):
    """A command's options, checked before any work starts: a wrong one is one line and exit code 2, like every
    other user error, instead of argparse's usage block (subcommands' parsers are of this class too)."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{self.prog}: {message} (see --help)")


def cli_entry(main: Callable[[], None]) -> Callable[[], None]:
    """For a command that checks its own options first (a sweep, the labelling tool)."""

    @functools.wraps(main)
    def run() -> None:
        try:
            main()
        except UserError as err:
            _exit(str(err), USER_ERROR_EXIT)
        except OutsideFault as err:
            _exit(str(err), FAULT_EXIT)
        except KeyboardInterrupt:
            _exit("interrupted: the open MLflow run is marked failed and no output was replaced", INTERRUPTED_EXIT)
        except Exception as err:
            line = describe(err)
            if line is None:
                raise  # not a known outside failure: a bug, with its traceback
            _exit(line, FAULT_EXIT)

    return run


def _exit(message: str, code: int) -> None:
    print(f"error: {masked(message)}", file=sys.stderr, flush=True)  # a URI in a message from a library too
    sys.exit(code)
