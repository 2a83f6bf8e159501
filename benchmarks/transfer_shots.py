"""Benchmark: target test accuracy of transfer, every fine-tuning strategy and the scratch control.

For each target kind, seed and number of shots per class it runs the pipeline's own stage
functions (prepare, pretrain, transfer, finetune, scratch) on ``params.yaml`` with ``seed``,
``prepare.target_kind`` and ``prepare.shots_per_class`` overridden, in a temporary folder with
its own MLflow store. It prints a table of mean ± std test accuracy (the one in
docs/benchmarks.md), and with ``--csv`` writes every single result.

    python -m benchmarks.transfer_shots                       # 2 kinds x 3 seeds x shots 1, 3, 10
    python -m benchmarks.transfer_shots --kinds new_classes --shots 10 --seeds 0
    python -m benchmarks.transfer_shots --set finetune.lora.r=4 --set trainer.lr=0.003

Per-epoch output goes to ``--log`` (default: benchmark-transfer.log); one line per setting is printed.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import base_params, benchmark_parser, scratch_store
from pipeline.data.prepare import prepare_data, write_prepared
from pipeline.paradigms.finetune.run import run_finetune
from pipeline.paradigms.pretrain.run import run_pretrain
from pipeline.paradigms.scratch.run import run_scratch
from pipeline.paradigms.transfer.run import run_transfer
from pipeline.params import parse_params
from pipeline.paths import StagePaths


def run_setting(params, work: Path, pretrained: bool) -> dict[str, float]:
    write_prepared(prepare_data(params), StagePaths.of("prepare", work).data)
    if not pretrained:  # the source task does not depend on the shots: pretrain once per kind and seed
        run_pretrain(params, StagePaths.of("pretrain", work))
    runs = run_transfer(params, StagePaths.of("transfer", work))
    runs |= run_finetune(params, StagePaths.of("finetune", work))
    runs |= run_scratch(params, StagePaths.of("scratch", work))
    return {variant: entry["test/acc"] for variant, entry in runs.items()}


def benchmark(base: dict, kinds: list[str], seeds: list[int], shots: list[int], log) -> pd.DataFrame:
    rows = []
    with scratch_store("transfer") as work:
        for kind in kinds:
            for seed in seeds:
                for i, n in enumerate(shots):
                    params = parse_params(
                        base | {"seed": seed, "prepare": base["prepare"] | {"target_kind": kind, "shots_per_class": n}}
                    )
                    started = time.perf_counter()
                    with contextlib.redirect_stderr(log):
                        accuracies = run_setting(params, work / f"{kind}-{seed}", pretrained=i > 0)
                    rows += [
                        {"target_kind": kind, "seed": seed, "shots": n, "variant": v, "test_acc": a}
                        for v, a in accuracies.items()
                    ]
                    shown = "  ".join(f"{v} {a:.3f}" for v, a in accuracies.items())
                    print(f"{kind} seed {seed} shots {n} ({time.perf_counter() - started:.0f} s): {shown}", flush=True)
    return pd.DataFrame(rows)


def summary_table(results: pd.DataFrame) -> str:
    """Markdown: one row per target kind and variant, one column per shots value, mean ± std over seeds."""
    stats = results.groupby(["target_kind", "variant", "shots"], sort=False)["test_acc"].agg(["mean", "std", "count"])
    cells = stats.apply(lambda r: f"{r['mean']:.3f} ± {r['std'] if r['count'] > 1 else 0:.3f}", axis=1).unstack("shots")
    shots = list(cells.columns)
    lines = [
        "| target kind | variant | " + " | ".join(f"{n} shots/class" for n in shots) + " |",
        "|---|---|" + "---|" * len(shots),
    ]
    lines += [
        f"| {kind} | {variant} | " + " | ".join(row[n] for n in shots) + " |"
        for (kind, variant), row in cells.iterrows()
    ]
    return "\n".join(lines)


def main() -> None:
    parser = benchmark_parser(__doc__, "transfer", "kind, seed, shots, variant, test_acc")
    parser.add_argument("--kinds", nargs="+", default=["domain_shift", "new_classes"])
    parser.add_argument("--shots", nargs="+", type=int, default=[1, 3, 10])
    args = parser.parse_args()
    started = time.perf_counter()
    with open(args.log, "w") as log:
        base = base_params(args)
        results = benchmark(base, args.kinds, args.seeds, args.shots, log)
    if args.csv:
        results.to_csv(args.csv, index=False)
    print(
        f"\n{summary_table(results)}\n\n{len(results)} runs in {time.perf_counter() - started:.0f} s; per-epoch log "
        f"in {args.log}"
    )


if __name__ == "__main__":
    main()
