"""A DVC stage's entry point: params.yaml read and checked, what killed stages left removed, the tracking store
reachable, before any work.

Failures come out as one line and an exit code (:mod:`pipeline.cli`).
"""

from __future__ import annotations

import functools
import sys
from typing import Callable

from pipeline.cli import cli_entry
from pipeline.leftovers import remove_abandoned_outputs, removed_line
from pipeline.params import Params, load_params
from pipeline.tracking.store import open_store


def stage_entry(main: Callable[[Params], None]) -> Callable[[], None]:
    """For a DVC stage: read params.yaml, remove the temporary outputs of dead processes (any stage's: the one that
    left them may never run again, cached) and check the tracking store (its runs of dead processes marked KILLED)
    before any work, then run ``main``."""

    @cli_entry
    @functools.wraps(main)
    def run() -> None:
        params = load_params()
        for leftover in remove_abandoned_outputs():
            print(removed_line(leftover), file=sys.stderr)
        open_store(params.tracking)
        main(params)

    return run
