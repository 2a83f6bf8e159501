"""Benchmark: the target task on short signed 1-D signals, by noise unit and backbone.

A dataset like a user's public benchmark of short signals: ``--examples`` signals of ``--length``
signed values in 10 classes, each class a smooth waveform of its own, shifted in time, scaled and
noisy (made here, seeded, so nothing is downloaded). Saved as an ``.npz``, it goes through the
pipeline's own stage functions (prepare, pretrain, transfer, scratch) for every noise setting,
backbone and seed, in a temporary folder with its own MLflow store. The table (the one in
docs/benchmarks.md) gives mean ± std target test accuracy, the logistic-regression baseline
``prepare`` fitted on the target shots, and which warnings fired.

    python -m benchmarks.signals                       # absolute 0.3 vs source_std 0.5 x mlp, cnn1d x 3 seeds
    python -m benchmarks.signals --backbones cnn1d --seeds 0

Per-epoch output goes to ``--log`` (default: benchmark-signals.log); one line per setting is printed.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import base_params, benchmark_parser, mean_std, scratch_store
from pipeline.data.prepare import prepare_data, write_prepared
from pipeline.paradigms.pretrain.run import run_pretrain
from pipeline.paradigms.sanity import check_results
from pipeline.paradigms.scratch import PARADIGM as SCRATCH
from pipeline.paradigms.scratch.run import run_scratch
from pipeline.paradigms.transfer import PARADIGM as TRANSFER
from pipeline.paradigms.transfer.run import run_transfer
from pipeline.params import parse_params
from pipeline.paths import StagePaths

NOISE = {"absolute 0.3": {"noise_unit": "absolute", "noise_std": 0.3},
         "source_std 0.5": {"noise_unit": "source_std", "noise_std": 0.5}}  # fmt: skip


def make_signals(n: int, length: int, classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Signed signals: class ``c`` is a sum of three random sinusoids (its waveform), shifted by up to an
    eighth of the length, scaled by 0.5-1.5 and in Gaussian noise of std 0.5; one signal in fifty has a
    glitch (a spike of 5-9), so that scaled by its largest value the data's spread is under 0.2."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / length
    frequencies = rng.uniform(1, 6, size=(classes, 3))
    phases = rng.uniform(0, 2 * np.pi, size=(classes, 3))
    y = np.arange(n) % classes
    shifts = rng.integers(-length // 8, length // 8 + 1, n)
    waves = np.stack(
        [np.sin(2 * np.pi * frequencies[y] * (t[i] - shifts[:, None] / length) + phases[y]).sum(axis=1)
         for i in range(length)], axis=1,
    )  # fmt: skip
    X = rng.uniform(0.5, 1.5, size=(n, 1)) * waves + rng.normal(0, 0.5, size=(n, length))
    glitched = rng.random(n) < 0.02
    X[glitched, rng.integers(0, length, glitched.sum())] += rng.choice([-1, 1], glitched.sum()) * rng.uniform(
        5, 9, glitched.sum()
    )
    return X.astype(np.float32), y


def run_setting(params, work: Path) -> dict[str, object]:
    prepared = prepare_data(params)
    write_prepared(prepared, StagePaths.of("prepare", work).data)
    run_pretrain(params, StagePaths.of("pretrain", work))
    transfer = run_transfer(params, StagePaths.of("transfer", work))
    scratch = run_scratch(params, StagePaths.of("scratch", work))
    warned = [stage for stage, paradigm, runs in (("transfer", TRANSFER, transfer), ("scratch", SCRATCH, scratch))
              if check_results(paradigm, runs, params, StagePaths.of("prepare", work).data)]  # fmt: skip
    return {
        "transfer": transfer["frozen_body"]["test/acc"],
        "scratch": scratch["scratch"]["test/acc"],
        "logistic": prepared.target.baselines["logistic"],
        "noise_warning": bool(prepared.target.notes),
        "stages_warned": ",".join(warned),
        "source_std": float(prepared.source.X["train"].std()),
    }


def benchmark(base: dict, data: Path, backbones: list[str], seeds: list[int], log) -> pd.DataFrame:
    rows = []
    with scratch_store("signals") as work:
        for setting, noise in NOISE.items():
            for backbone in backbones:
                for seed in seeds:
                    params = parse_params(
                        base
                        | {"seed": seed, "data": base["data"] | {"source": "npz", "path": str(data)}}
                        | {"prepare": base["prepare"] | noise, "model": base["model"] | {"backbone": backbone}}
                    )
                    started = time.perf_counter()
                    with contextlib.redirect_stderr(log):
                        result = run_setting(params, work / f"{setting}-{backbone}-{seed}".replace(" ", "_"))
                    rows.append({"noise": setting, "backbone": backbone, "seed": seed, **result})
                    print(
                        f"{setting} {backbone} seed {seed} ({time.perf_counter() - started:.0f} s): transfer "
                        f"{result['transfer']:.3f} scratch {result['scratch']:.3f} logistic {result['logistic']:.3f}"
                        f" noise warning {result['noise_warning']} stages warned [{result['stages_warned']}]",
                        flush=True,
                    )
    return pd.DataFrame(rows)


def summary_table(results: pd.DataFrame) -> str:
    lines = ["| noise | backbone | transfer | scratch | logistic regression (target shots) | prepare warned | "
             "stages warned |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for (noise, backbone), group in results.groupby(["noise", "backbone"], sort=False):
        warned = sorted({s for stages in group["stages_warned"] for s in stages.split(",") if s})
        lines.append(
            f"| {noise} | {backbone} | {mean_std(group['transfer'])} | {mean_std(group['scratch'])} | "
            f"{mean_std(group['logistic'])} | {'yes' if group['noise_warning'].all() else 'no'} | "
            f"{', '.join(warned) or 'none'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = benchmark_parser(__doc__, "signals", "noise, backbone, seed, transfer, scratch, logistic, warnings")
    parser.add_argument("--backbones", nargs="+", default=["mlp", "cnn1d"])
    parser.add_argument("--examples", type=int, default=3000)
    parser.add_argument("--length", type=int, default=48)
    args = parser.parse_args()
    base = base_params(args)
    X, y = make_signals(args.examples, args.length)
    with scratch_store("signals-data") as folder, open(args.log, "w") as log:
        data = folder / "signals.npz"
        np.savez(data, X=X, y=y)
        results = benchmark(base, data, args.backbones, args.seeds, log)
    print(f"source inputs' std after data.scale max: {results['source_std'].mean():.3f}")
    print(summary_table(results))
    if args.csv:
        results.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
