"""Benchmark: active-learning query strategies against random labelling, over several seeds.

For each seed it runs the pipeline's own stage functions (prepare, then active_learning) on
``params.yaml`` with ``seed`` (and ``active_learning.cooperative``) overridden, in a temporary
folder with its own MLflow store. It prints the tables in docs/benchmarks.md: per strategy the
final test accuracy, ``al/alc`` and its gain over random, the labels needed to reach random's
final accuracy and their share of random's labels (mean ± std over the seeds); the mean
learning curves; and, co-operatively, how many pseudo-labels were used and how many were right.

    python -m benchmarks.active_learning_seeds                      # seeds 0 1 2, with and without pseudo-labels
    python -m benchmarks.active_learning_seeds --cooperative off --seeds 0
    python -m benchmarks.active_learning_seeds --set active_learning.warm_start=true --cooperative off
    python -m benchmarks.active_learning_seeds --set active_learning.init_from_base=true --cooperative off

Per-round output goes to ``--log`` (default: benchmark-active-learning.log); one line per setting is printed.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import base_params, benchmark_parser, mean_std, scratch_store
from pipeline.data.prepare import prepare_data, write_prepared
from pipeline.paradigms.active_learning.run import run_active_learning
from pipeline.paradigms.pretrain.run import run_pretrain
from pipeline.params import parse_params
from pipeline.paths import StagePaths

SHARE_LIMIT = 0.7  # the bar: random's final accuracy with at most 70 % of random's labels
SUMMARY = ["test/acc", "al/alc", "al/alc_gain_vs_random", "al/labels_to_target", "al/label_share_vs_random"]


def run_setting(params, work: Path) -> tuple[list[dict], list[dict]]:
    """One stage run: a summary row per strategy, and its learning curve."""
    paths = StagePaths.of("active_learning", work)
    write_prepared(prepare_data(params), paths.data)
    if params.active_learning.init_from_base and not paths.base.is_file():
        run_pretrain(params, StagePaths.of("pretrain", work))
    runs = run_active_learning(params, paths)
    curves = pd.read_csv(paths.plots / "curves.csv").to_dict("records")
    return [
        {
            "variant": v,
            **{
                k: run.get(k, np.nan)
                for k in SUMMARY + ["al/pseudo_labels_total", "al/pseudo_label_acc_mean", "al/labels_final"]
            },
        }
        for v, run in runs.items()
    ], curves


def benchmark(base: dict, seeds: list[int], cooperative: list[bool], log) -> tuple[pd.DataFrame, pd.DataFrame]:
    summaries, curves = [], []
    with scratch_store("active-learning") as work:
        for seed in seeds:
            for pseudo in cooperative:
                params = parse_params(
                    base | {"seed": seed, "active_learning": base["active_learning"] | {"cooperative": pseudo}}
                )
                started = time.perf_counter()
                with contextlib.redirect_stderr(log):
                    found, curve = run_setting(params, work / f"seed-{seed}-{pseudo}")
                summaries += [{"seed": seed, **row} for row in found]
                curves += [{"seed": seed, **row} for row in curve]
                shown = "  ".join(f"{r['variant']} {r['test/acc']:.3f}/alc {r['al/alc']:.3f}" for r in found)
                print(f"seed {seed} cooperative={pseudo} ({time.perf_counter() - started:.0f} s): {shown}", flush=True)
    return pd.DataFrame(summaries), pd.DataFrame(curves)


def summary_tables(results: pd.DataFrame, curves: pd.DataFrame) -> str:
    seeds = results["seed"].nunique()
    lines = [
        "| strategy | final test acc | al/alc | alc − random | labels to reach random's final acc | share of random's "
        "labels | seeds at ≤ 70 % |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant, group in results.groupby("variant", sort=False):
        reached = group["al/labels_to_target"]
        labels = ", ".join("never" if np.isnan(x) else str(int(x)) for x in reached)
        share = group["al/label_share_vs_random"]
        control = variant.startswith("random")
        within = "–" if control else f"{int((share <= SHARE_LIMIT).sum())}/{seeds}"
        lines.append(
            f"| {variant} | {mean_std(group['test/acc'])} | {mean_std(group['al/alc'])} | "
            f"{mean_std(group['al/alc_gain_vs_random'])} | "
            f"{labels} | {'(the target is its own)' if control else mean_std(share, 2)} | {within} |"
        )
    points = sorted(curves["labels"].unique())
    lines += [
        "",
        "| strategy | " + " | ".join(f"{int(x)} labels" for x in points) + " |",
        "|---|" + "---|" * len(points),
    ]
    for variant, group in curves.groupby("variant", sort=False):
        means = group.groupby("labels")["test/acc"].mean()
        lines.append(f"| {variant} | " + " | ".join(f"{means[x]:.3f}" for x in points) + " |")
    pseudo = results[results["variant"].str.endswith("+pseudo")]
    if len(pseudo):
        lines += ["", "| strategy | pseudo-labels used (all rounds) | share right |", "|---|---|---|"]
        for variant, group in pseudo.groupby("variant", sort=False):
            lines.append(
                f"| {variant} | {mean_std(group['al/pseudo_labels_total'], 0)} | "
                f"{mean_std(group['al/pseudo_label_acc_mean'])} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = benchmark_parser(__doc__, "active-learning", "seed, variant, final and curve figures")
    parser.add_argument("--cooperative", choices=["off", "on", "both"], default="both")
    args = parser.parse_args()
    started = time.perf_counter()
    cooperative = {"off": [False], "on": [True], "both": [False, True]}[args.cooperative]
    with open(args.log, "w") as log:
        results, curves = benchmark(base_params(args), args.seeds, cooperative, log)
    if args.csv:
        results.to_csv(args.csv, index=False)
        curves.to_csv(args.csv.with_name(args.csv.stem + "-curves.csv"), index=False)
    print(
        f"\n{summary_tables(results, curves)}\n\n{len(results)} runs in {time.perf_counter() - started:.0f} s; "
        f"per-round log in {args.log}"
    )


if __name__ == "__main__":
    main()
