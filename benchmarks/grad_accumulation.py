"""Benchmark: what gradient accumulation buys, at a fixed effective batch of 64 (64 × 1, 16 × 4, 8 × 8).

For each seed and each setting of ``model.batch_norm`` it trains the scratch stage's classifier on the
``full`` task (every class, the full training split) with ``trainer.batch_size`` × ``trainer.accumulate_grad_batches``
= 64, through the pipeline's own run contract in a scratch MLflow store, and records the activation bytes of
one step (measured), the measured peak, seconds per epoch, epochs and test accuracy. It prints the table
in docs/benchmarks.md and, with ``--figure``, draws it.

    python -m benchmarks.grad_accumulation --figure docs/figures/gradient-accumulation.png

Without batch norm an accumulated step is the large batch's step (tests/test_activations.py checks the
weights agree); with it, each micro-batch is normalised by its own statistics, so the steps differ.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import base_params, benchmark_parser, mean_std, scratch_store
from pipeline.data.prepare import prepare_data, write_prepared
from pipeline.data.prepared import load_task
from pipeline.memory.activations import MEASURED
from pipeline.models.classifier import build_classifier
from pipeline.paradigms import scratch
from pipeline.paradigms.fitted import train_classifier
from pipeline.params import parse_params
from pipeline.paths import StagePaths
from pipeline.seeding import seed_everything
from pipeline.tracking.figures import close

SPLITS = ((64, 1), (16, 4), (8, 8))  # batch size × accumulated batches: 64 examples a step


def run_one(params, work: Path, batch: int, accumulate: int) -> dict:
    task = load_task(StagePaths.of("prepare", work).prepared("full"))
    seed_everything(params.seed)
    model = build_classifier(params.model, task.input_shape, task.num_classes)
    spec = scratch.PARADIGM.run_spec(f"{batch}x{accumulate}")
    entry, _ = train_classifier(params, spec, model, task, work / f"{batch}x{accumulate}.pt")
    return {
        "activations": entry[MEASURED],
        "peak": entry["memory/peak_bytes"],
        "s/epoch": entry["time/fit_seconds"] / max(entry["train/epochs"], 1),
        "epochs": entry["train/epochs"],
        "test/acc": entry["test/acc"],
    }


def benchmark(base: dict, seeds: list[int], log) -> pd.DataFrame:
    rows = []
    with scratch_store("grad-accumulation") as work:
        for seed in seeds:
            for norm in (True, False):
                for batch, accumulate in SPLITS:
                    tree = base | {"seed": seed, "model": base["model"] | {"batch_norm": norm}}
                    tree["trainer"] = base["trainer"] | {"batch_size": batch, "accumulate_grad_batches": accumulate}
                    tree["scratch"] = {"trainer": {}}  # the shared trainer options, as set here
                    params = parse_params(tree)
                    folder = work / f"seed-{seed}"
                    if not (folder / "data" / "prepared" / "full.npz").is_file():
                        write_prepared(prepare_data(params), StagePaths.of("prepare", folder).data)
                    started = time.perf_counter()
                    with contextlib.redirect_stderr(log):
                        found = run_one(params, folder, batch, accumulate)
                    rows.append({"seed": seed, "batch_norm": norm, "split": f"{batch} × {accumulate}", **found})
                    print(
                        f"seed {seed} batch_norm {norm} {batch}x{accumulate} ({time.perf_counter() - started:.0f} s): "
                        f"acc {found['test/acc']:.3f}, activations {found['activations']:,.0f} B",
                        flush=True,
                    )
    return pd.DataFrame(rows)


def summary(results: pd.DataFrame) -> str:
    lines = [
        "| batch norm | batch × accumulated | activations of a step (bytes) | measured peak (bytes) | s / epoch "
        "| epochs | test acc | acc − 64 × 1 (paired by seed) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (norm, split), group in results.groupby(["batch_norm", "split"], sort=False):
        large = results[(results.batch_norm == norm) & (results.split == "64 × 1")].set_index("seed")["test/acc"]
        gap = group.set_index("seed")["test/acc"] - large
        lines.append(
            f"| {'on' if norm else 'off'} | {split} | {mean_std(group['activations'], 0)} "
            f"| {mean_std(group['peak'], 0)} "
            f"| {mean_std(group['s/epoch'], 3)} | {mean_std(group['epochs'], 1)} | {mean_std(group['test/acc'], 3)} "
            f"| {'–' if split == '64 × 1' else mean_std(gap, 3)} |"
        )
    return "\n".join(lines)


def draw(results: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for norm, group in results.groupby("batch_norm", sort=False):
        by_split = group.groupby("split", sort=False)
        means, stds = by_split.mean(numeric_only=True), by_split.std(numeric_only=True).fillna(0)
        label = f"batch norm {'on' if norm else 'off'}"
        for ax, key, title in zip(
            axes, ("activations", "s/epoch", "test/acc"), ("activations of a step (bytes)", "s / epoch", "test acc")
        ):
            ax.errorbar(list(means.index), means[key], yerr=stds[key], marker="o", capsize=3, label=label)
            ax.set_title(title)
            ax.set_xlabel("batch × accumulated (64 a step)")
    axes[0].legend(fontsize=8)
    fig.suptitle("gradient accumulation at an effective batch of 64 (mean ± std over the seeds)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    close(fig)


def main() -> None:
    parser = benchmark_parser(__doc__, "grad-accumulation", "seed, batch_norm, split, figures")
    parser.add_argument("--figure", type=Path, help="also draw the table as a PNG here")
    args = parser.parse_args()
    started = time.perf_counter()
    with open(args.log, "w") as log:
        results = benchmark(base_params(args), args.seeds, log)
    if args.csv:
        results.to_csv(args.csv, index=False)
    if args.figure:
        draw(results, args.figure)
    print(f"\n{summary(results)}\n\n{len(results)} fits in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
