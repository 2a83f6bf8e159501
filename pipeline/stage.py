"""Entry-point wrapper for stage scripts: a user error is one line on stderr and exit code 2."""

from __future__ import annotations

import functools
import sys
from typing import Callable

from pipeline.errors import UserError

USER_ERROR_EXIT = 2


def stage_entry(main: Callable[[], None]) -> Callable[[], None]:
    @functools.wraps(main)
    def run() -> None:
        try:
            main()
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(USER_ERROR_EXIT)

    return run
