"""A DVC stage's entry point: params.yaml read and checked, the tracking store reachable, before any work.

Failures come out as one line and an exit code (:mod:`pipeline.cli`).
"""

from __future__ import annotations

import functools
from typing import Callable

from pipeline.cli import cli_entry
from pipeline.params import Params, load_params
from pipeline.tracking.store import open_store


def stage_entry(main: Callable[[Params], None]) -> Callable[[], None]:
    """For a DVC stage: read params.yaml and check the tracking store before any work, then run ``main``."""

    @cli_entry
    @functools.wraps(main)
    def run() -> None:
        params = load_params()
        open_store(params.tracking)
        main(params)

    return run
