"""Benchmark: the multi-task model against separate single-task models, over several seeds.

For each seed and loss weighting it runs the pipeline's own stage functions (prepare, and
pretrain when ``multitask.init_from_base`` is set, then multitask) on ``params.yaml`` with
``seed`` and ``multitask.weighting`` overridden, in a temporary folder with its own MLflow
store. It prints the tables in docs/benchmarks.md: per-task test accuracy (mean ± std over the
seeds) and the costs (parameters, estimated and measured training memory, fit time) of the
multi-task model and of the separate models together; ``--csv`` writes every run's figures.

    python -m benchmarks.multitask_seeds                            # seeds 0 1 2, fixed and uncertainty
    python -m benchmarks.multitask_seeds --weightings uncertainty --seeds 0
    python -m benchmarks.multitask_seeds --set multitask.init_from_base=true

Per-epoch output goes to ``--log`` (default: benchmark-multitask.log); one line per setting is printed.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import base_params, benchmark_parser, mean_std, scratch_store
from pipeline.data.prepare import prepare_data, write_prepared
from pipeline.paradigms.multitask.run import COSTS, SHARED, run_multitask
from pipeline.paradigms.pretrain.run import run_pretrain
from pipeline.params import parse_params
from pipeline.paths import StagePaths

COST_COLUMNS = {
    "params/total": "parameters",
    "memory/estimated_train_bytes": "estimated training memory (bytes)",
    "memory/peak_bytes": "measured peak (bytes)",
    "time/fit_seconds": "fit time (s)",
}


def run_setting(params, work: Path) -> list[dict]:
    """One stage run: a row per task for the multi-task model and for the separate models."""
    paths = StagePaths.of("multitask", work)
    write_prepared(prepare_data(params), paths.data)
    if params.multitask.init_from_base and not paths.base.is_file():
        run_pretrain(params, StagePaths.of("pretrain", work))
    runs = run_multitask(params, paths)
    shared = runs[SHARED]
    rows = []
    for task in (spec.name for spec in params.multitask.tasks):
        separate = runs[f"single_task/{task}"]
        rows.append({"task": task, "approach": "multitask", "test_acc": shared[f"test/{task}/acc"]})
        rows.append({"task": task, "approach": "separate", "test_acc": separate[f"test/{task}/acc"]})
    costs = {"multitask": {k: shared[k] for k in COSTS}, "separate": {k: shared[f"separate/{k}"] for k in COSTS}}
    rows += [{"task": "(cost)", "approach": approach, **values} for approach, values in costs.items()]
    return rows


def benchmark(base: dict, seeds: list[int], weightings: list[str], log) -> pd.DataFrame:
    rows = []
    with scratch_store("multitask") as work:
        for seed in seeds:
            for weighting in weightings:
                params = parse_params(base | {"seed": seed, "multitask": base["multitask"] | {"weighting": weighting}})
                started = time.perf_counter()
                with contextlib.redirect_stderr(log):
                    found = run_setting(params, work / f"seed-{seed}")
                rows += [{"seed": seed, "weighting": weighting, **row} for row in found]
                shown = "  ".join(f"{r['task']}/{r['approach']} {r['test_acc']:.3f}" for r in found if "test_acc" in r)
                print(f"seed {seed} {weighting} ({time.perf_counter() - started:.0f} s): {shown}", flush=True)
    return pd.DataFrame(rows)


def summary_tables(results: pd.DataFrame) -> str:
    """Markdown: test accuracy per task and approach; costs of each approach and their ratio."""
    accuracy = results[results["task"] != "(cost)"]
    tasks = list(dict.fromkeys(accuracy["task"]))
    lines = [
        "| weighting | approach | " + " | ".join(f"{t} test acc" for t in tasks) + " |",
        "|---|---|" + "---|" * len(tasks),
    ]
    for (weighting, approach), group in accuracy.groupby(["weighting", "approach"], sort=False):
        lines.append(
            f"| {weighting} | {approach} | "
            + " | ".join(mean_std(group[group["task"] == t]["test_acc"], 3) for t in tasks)
            + " |"
        )
    costs = results[results["task"] == "(cost)"]
    lines += [
        "",
        "| weighting | approach | " + " | ".join(COST_COLUMNS.values()) + " |",
        "|---|---|" + "---|" * len(COST_COLUMNS),
    ]
    for (weighting, approach), group in costs.groupby(["weighting", "approach"], sort=False):
        lines.append(
            f"| {weighting} | {approach} | "
            + " | ".join(mean_std(group[k], 2 if k.startswith("time") else 0) for k in COST_COLUMNS)
            + " |"
        )
    for weighting, group in costs.groupby("weighting", sort=False):
        shared = group[group["approach"] == "multitask"].set_index("seed")
        separate = group[group["approach"] == "separate"].set_index("seed")
        ratios = " | ".join(mean_std(shared[k] / separate[k], 3) for k in COST_COLUMNS)
        lines.append(f"| {weighting} | ratio multitask / separate | {ratios} |")
    return "\n".join(lines)


def main() -> None:
    parser = benchmark_parser(__doc__, "multitask", "seed, weighting, task, approach, figures")
    parser.add_argument("--weightings", nargs="+", default=["fixed", "uncertainty"])
    args = parser.parse_args()
    started = time.perf_counter()
    with open(args.log, "w") as log:
        base = base_params(args)
        results = benchmark(base, args.seeds, args.weightings, log)
    if args.csv:
        results.to_csv(args.csv, index=False)
    runs = len(results[results["task"] == "(cost)"]) // 2
    print(
        f"\n{summary_tables(results)}\n\n{runs} stage runs in {time.perf_counter() - started:.0f} s; per-epoch log in "
        f"{args.log}"
    )


if __name__ == "__main__":
    main()
