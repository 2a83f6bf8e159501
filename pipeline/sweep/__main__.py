"""``python -m pipeline.sweep <stage> --n-trials N [--timeout S] [--study NAME] [--storage URL] [--apply]``.

Several workers on one study: start the same command (same ``--study`` and ``--storage``) in
several processes or machines; together they run exactly ``--n-trials`` trials, the trial of a
worker that dies retried by another (``--heartbeat``, ``--idle-wait``: see pipeline.sweep.study).
"""

from __future__ import annotations

import argparse
import math
import time

from pipeline.cli import ArgumentParser, cli_entry
from pipeline.config.edit import apply_to_params, exp_run_command
from pipeline.config.loading import read_yaml
from pipeline.paradigms import paradigms
from pipeline.params import DEFAULT_PARAMS_FILE, load_params
from pipeline.sweep.storage import DEFAULT_STORAGE, HEARTBEAT_S, check_storage
from pipeline.sweep.study import IDLE_WAIT_S


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a whole number of at least 1")
    return int(text)


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number of seconds, 0 or more")
    return value


def name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: must not be empty")
    return text


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m pipeline.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=[entry.stage for entry in paradigms()])
    p.add_argument("--n-trials", type=positive, required=True, help="trials in the study, shared by all its workers")
    p.add_argument("--timeout", type=seconds, default=None, help="seconds after which this worker takes no new trial")
    p.add_argument(
        "--study",
        type=name,
        default=None,
        help="study name; workers sharing it share its trials (default: <stage>-<time>)",
    )
    p.add_argument("--storage", default=None, help=f"Optuna RDB URL or journal:PATH (default {DEFAULT_STORAGE})")
    p.add_argument(
        "--heartbeat",
        type=positive,
        default=HEARTBEAT_S,
        help=f"seconds between a running trial's heartbeats; one silent for 3 is retried (default {HEARTBEAT_S})",
    )
    p.add_argument(
        "--idle-wait",
        type=seconds,
        default=IDLE_WAIT_S,
        help="seconds a worker with no trial left waits for the others' running ones, to retry one whose "
        f"worker dies (default {IDLE_WAIT_S:.0f})",
    )
    p.add_argument("--apply", action="store_true", help="write the best params into params.yaml")
    return p


@cli_entry
def main() -> None:
    args = parser().parse_args()
    check_storage(args.storage)  # with the other options, in a second, before torch and Lightning load
    params = load_params()
    from pipeline.sweep.run import run_sweep  # loads torch, Lightning and MLflow: seconds

    study = args.study or f"{args.stage}-{time.strftime('%Y%m%d-%H%M%S')}"
    result = run_sweep(
        params, args.stage, args.n_trials, study, args.storage, args.timeout, args.heartbeat, args.idle_wait
    )
    trials = f"{result.ran} trial{'' if result.ran == 1 else 's'}"
    print(f"study {study}: this worker ran {trials}; MLflow parent run {result.parent_run_id}")
    if result.best_params is None:
        print("no trial completed: nothing to apply")
        return
    print(f"best value {result.best_value:.4f} with {result.best_params}")
    if args.apply:
        apply_to_params(DEFAULT_PARAMS_FILE, result.best_params)
        print(f"written into {DEFAULT_PARAMS_FILE}; `dvc repro` re-runs the stages that read them")
    else:
        line = exp_run_command(result.best_params, read_yaml(DEFAULT_PARAMS_FILE))
        print(f"try them as a DVC experiment (or re-run with --apply):\n  {line}")  # a line of its own, to paste


if __name__ == "__main__":
    main()
