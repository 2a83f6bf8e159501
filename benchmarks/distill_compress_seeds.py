"""Benchmark: knowledge distillation and model compression over several seeds, accuracy against size and latency.

For each seed it runs the pipeline's own stage functions on ``params.yaml`` with ``seed`` overridden (so
prepare's splits change too), in a temporary folder with its own MLflow store: prepare, distill (the
teacher, the student on labels alone, the distilled student) with every ``--labelled-fractions`` value,
then compress on the teacher of the first. It prints the tables in docs/benchmarks.md: per model, test
accuracy, size on disk, non-zero weights, batch-1 latency and throughput (mean ± std over the seeds); the
distilled student's gain over the control, paired by seed; and, per seed, the smallest compressed model
within one point of the uncompressed teacher.

    python -m benchmarks.distill_compress_seeds                          # seeds 0 1 2, all labels and 10 %
    python -m benchmarks.distill_compress_seeds --seeds 0 --labelled-fractions 1.0

Latency is timed in this one process, with the stage's thread count (``trainer.num_threads``, printed).
Per-epoch output goes to ``--log`` (default: benchmark-distill-compress.log).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import base_params, benchmark_parser, mean_std, scratch_store
from pipeline.data.prepare import prepare_data, write_prepared
from pipeline.paradigms.compress.run import run_compress
from pipeline.paradigms.distill.run import run_distill
from pipeline.params import parse_params
from pipeline.paths import StagePaths

SHOWN = {
    "test/acc": ("test acc", 3),
    "model/size_bytes": ("size on disk (KiB)", 1),
    "model/nonzero_weights": ("non-zero weights", 0),
    "deploy/latency_ms_p50": ("latency p50 (ms)", 3),
    "deploy/throughput_samples_per_s": ("throughput (samples/s)", 0),
}


def run_seed(params, work: Path, fractions: list[float], log) -> list[dict]:
    """One seed: prepare, distill per labelled fraction (the first one's teacher is compress's), compress."""
    write_prepared(prepare_data(params), StagePaths.of("prepare", work).data)
    rows = []
    for i, fraction in enumerate(fractions):
        seeded = params.model_copy(
            update={"distill": params.distill.model_copy(update={"labelled_fraction": fraction})}
        )
        paths = StagePaths.of("distill", work)
        with contextlib.redirect_stderr(log):
            runs = run_distill(seeded, paths if i == 0 else paths.writing_to(work / f"labels-{fraction}"))
        rows += [{"stage": "distill", "labels": fraction, "variant": v, **e} for v, e in runs.items()]
    with contextlib.redirect_stderr(log):
        runs = run_compress(params, StagePaths.of("compress", work))
    return rows + [{"stage": "compress", "labels": fractions[0], "variant": v, **e} for v, e in runs.items()]


def benchmark(base: dict, seeds: list[int], fractions: list[float], log) -> pd.DataFrame:
    rows = []
    with scratch_store("distill-compress") as work:
        for seed in seeds:
            params = parse_params(base | {"seed": seed})
            started = time.perf_counter()
            found = run_seed(params, work / f"seed-{seed}", fractions, log)
            rows += [{"seed": seed, **row} for row in found]
            shown = "  ".join(f"{r['stage']}/{r['variant']}@{r['labels']:g} {r['test/acc']:.3f}" for r in found)
            print(f"seed {seed} ({time.perf_counter() - started:.0f} s): {shown}", flush=True)
    return pd.DataFrame(rows)


def _cell(group: pd.DataFrame, key: str, digits: int) -> str:
    values = group[key] / 1024 if key == "model/size_bytes" else group[key]
    return mean_std(values, digits)


def distill_table(results: pd.DataFrame) -> str:
    found = results[results["stage"] == "distill"]
    lines = [
        "| labels students see | model | "
        + " | ".join(name for name, _ in SHOWN.values())
        + " | agrees with teacher |",
        "|---|---|" + "---|" * (len(SHOWN) + 1),
    ]
    for (labels, variant), group in found.groupby(["labels", "variant"], sort=False):
        cells = " | ".join(_cell(group, key, digits) for key, (_, digits) in SHOWN.items())
        agreement = mean_std(group["distill/agreement"], 3) if variant != "teacher" else "–"
        lines.append(f"| {labels:.0%} | {variant} | {cells} | {agreement} |")
    lines += ["", "| labels students see | distilled − student, test acc (paired by seed) | seeds distilled ahead |"]
    lines.append("|---|---|---|")
    for labels, group in found.groupby("labels", sort=False):
        by = group.pivot(index="seed", columns="variant", values="test/acc")
        gap = by["distilled"] - by["student"]
        lines.append(f"| {labels:.0%} | {mean_std(gap, 3)} | {int((gap > 0).sum())} of {len(gap)} |")
    return "\n".join(lines)


def compress_table(results: pd.DataFrame) -> str:
    found = results[results["stage"] == "compress"]
    extra = {"compress/acc_drop": ("acc drop vs reference", 3), "compress/size_ratio": ("size / reference", 3),
             "compress/latency_ratio": ("latency / reference", 2)}  # fmt: skip
    columns = {**SHOWN, **extra}
    lines = ["| variant | " + " | ".join(name for name, _ in columns.values()) + " |", "|---|" + "---|" * len(columns)]
    for variant, group in found.groupby("variant", sort=False):
        cells = " | ".join(_cell(group, key, digits) if key in group else "–" for key, (_, digits) in columns.items())
        lines.append(f"| {variant} | {cells} |")
    lines += ["", "| seed | smallest within one point of the reference | its size / reference | its acc drop |"]
    lines.append("|---|---|---|---|")
    for seed, group in found.groupby("seed"):
        close = group[(group["variant"] != "reference") & (group["compress/acc_drop"] <= 0.01)]
        if close.empty:
            lines.append(f"| {seed} | none | – | – |")
            continue
        best = close.loc[close["model/size_bytes"].idxmin()]
        lines.append(
            f"| {seed} | {best['variant']} | {best['compress/size_ratio']:.3f} | {best['compress/acc_drop']:+.3f} |"
        )
    return "\n".join(lines)


def batching_gain(results: pd.DataFrame) -> str:
    """What tests/test_deployment.py leaves to this benchmark: the throughput batch answers more samples per second
    than batch-1 calls (1000 / the p50 latency), on this machine, for every model."""
    gain = results["deploy/throughput_samples_per_s"] * results["deploy/latency_ms_p50"] / 1000
    verdict = "batching pays for every model" if (gain > 1).all() else "batching does NOT pay for every model"
    return (
        f"Throughput batch vs batch-1 calls: {gain.min():.1f}x to {gain.max():.1f}x the samples per second ({verdict})."
    )


def main() -> None:
    parser = benchmark_parser(__doc__, "distill-compress", "seed, stage, labels, variant, every metric")
    parser.add_argument("--labelled-fractions", nargs="+", type=float, default=[1.0, 0.1])
    args = parser.parse_args()
    started = time.perf_counter()
    with open(args.log, "w") as log:
        base = base_params(args)
        results = benchmark(base, args.seeds, args.labelled_fractions, log)
    if args.csv:
        results.to_csv(args.csv, index=False)
    threads = base["trainer"]["num_threads"]
    print(f"\n{distill_table(results)}\n\n{compress_table(results)}\n\n{batching_gain(results)}\n")
    print(
        f"{len(args.seeds)} seeds in {time.perf_counter() - started:.0f} s; torch threads: {threads} "
        f"(trainer.num_threads; this machine has {os.cpu_count()} cores); per-epoch log in {args.log}"
    )


if __name__ == "__main__":
    main()
