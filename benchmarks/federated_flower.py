"""Benchmark: the flower engine against the in-process engine, side by side: the same rounds, and what they cost.

**Equivalence.** The digits, ``--equivalence-clients`` clients on the Dirichlet partition, ``--equivalence-rounds``
rounds, half the clients sampled each round, no client dropout and model dropout off (the flower engine seeds
dropout's masks per client request, the in-process engine once per run). For FedAvg, FedProx and FedAdam (a
server optimiser), each seed of ``--seeds``: one run on each engine (``federated.engine: inprocess`` with
``batched: false``, the same computation client by client; ``batched: true``, the default; ``flower``, Flower's
simulation runtime on Ray), and the per-round test accuracy of each compared with flower's.

**Cost.** Like ``benchmarks.federated_scale``: the digits tiled to ``--examples`` noisy copies, IID, FedAvg, every
client every round, one local epoch, for 10, 100 and 1,000 clients, each engine, ``--repeats`` times. Rounds per
second: one over the median round time (``round/seconds``, rounds after the first). Start-up: the run's wall
time less its rounds' time, so the engine's start (Flower and Ray's for flower), per-round evaluation and MLflow
logging (the same on every engine). Peak memory: the highest resident set of this process and all of its
children (Ray's processes and workers), sampled every 50 ms; and that less this process's before the run.

    python -m benchmarks.federated_flower                     # both parts, seeds 0 1 2, 3 repeats
    python -m benchmarks.federated_flower --clients 10 100 --repeats 1 --seeds 0   # a quick check

torch's threads: ``trainer.num_threads`` in each process (1 in params.yaml; each Flower worker has one CPU).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import statistics
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import torch

from benchmarks.common import base_params, benchmark_parser, scratch_store, with_overrides
from benchmarks.federated_scale import per_round_seconds, write_synthetic_digits
from pipeline.data.prepare import prepare_data, write_prepared
from pipeline.paradigms.federated.run import run_federated
from pipeline.params import parse_params
from pipeline.paths import StagePaths

ENGINES = {
    "in-process, clients one by one": ["federated.engine=inprocess", "federated.batched=false"],
    "in-process, batched": ["federated.engine=inprocess", "federated.batched=true"],
    "flower": ["federated.engine=flower"],
}
REFERENCE = "flower"
STRATEGIES = ["fedavg", "fedprox", "fedadam"]
MB = 1e6


class TreePeak:
    """The peak resident memory of this process and its children, sampled in a thread."""

    def __init__(self, every: float = 0.05):
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(self.every)

    def __enter__(self) -> "TreePeak":
        self.before = psutil.Process().memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run(tree: dict, engine: str, folder: Path, data: Path, log) -> tuple[dict, list[float], float, TreePeak]:
    params = parse_params(with_overrides(copy.deepcopy(tree), ENGINES[engine]))
    paths = StagePaths.of("federated", data).writing_to(folder)
    started = time.perf_counter()
    with TreePeak() as peak, contextlib.redirect_stderr(log):
        runs = run_federated(params, paths)
    return runs, per_round_seconds(folder / "plots"), time.perf_counter() - started, peak


def equivalence(base: dict, args, work: Path, log) -> pd.DataFrame:
    rows = []
    for seed in args.seeds:
        tree = with_overrides(
            copy.deepcopy(base),
            [
                f"seed={seed}",
                f"prepare.federated.num_clients={args.equivalence_clients}",
                "federated.partitions=[dirichlet]",
                f"federated.strategies=[{', '.join(STRATEGIES)}]",
                f"federated.rounds={args.equivalence_rounds}",
                "federated.client_fraction=0.5",
                "federated.client_dropout=0.0",
                "federated.personalization_steps=0",
                "federated.centralized=false",
                "model.dropout=0.0",
                "active_learning.strategies=[random]",  # bald needs model dropout
            ],
        )
        data = work / f"equivalence-{seed}"
        write_prepared(prepare_data(parse_params(copy.deepcopy(tree))), StagePaths.of("prepare", data).data)
        curves = {}
        for engine in ENGINES:
            folder = data / engine.replace(" ", "-").replace(",", "")
            run(tree, engine, folder, data, log)
            rounds = pd.read_csv(folder / "plots" / "rounds.csv")
            curves[engine] = {s: rounds[rounds["variant"] == f"dirichlet/{s}"]["test/acc"].tolist() for s in STRATEGIES}
        for strategy, engine in itertools.product(STRATEGIES, ENGINES):
            ours, theirs = curves[engine][strategy], curves[REFERENCE][strategy]
            gaps = [abs(a - b) for a, b in zip(ours, theirs)]
            rows.append(
                {
                    "strategy": strategy,
                    "engine": engine,
                    "seed": seed,
                    "rounds": len(ours),
                    "rounds_equal": sum(g == 0 for g in gaps),
                    "max_gap": max(gaps),
                    "final_acc": ours[-1],
                }
            )
        print(
            f"seed {seed}: "
            + ", ".join(f"{r['strategy']} {r['engine']} max gap {r['max_gap']:.4f}" for r in rows[-9:]),
            flush=True,
        )
    return pd.DataFrame(rows)


def equivalence_table(results: pd.DataFrame, num_test: int) -> str:
    lines = [
        "| strategy | engine | rounds with flower's test accuracy exactly | "
        f"largest gap in one round (test images of {num_test}) | final test acc (mean over seeds) |",
        "|---|---|---|---|---|",
    ]
    for (strategy, engine), group in results.groupby(["strategy", "engine"], sort=False):
        if engine == REFERENCE:
            lines.append(f"| {strategy} | flower | (reference) | – | {group['final_acc'].mean():.4f} |")
            continue
        gap = group["max_gap"].max()
        lines.append(
            f"| {strategy} | {engine} | {group['rounds_equal'].sum()} of {group['rounds'].sum()} | "
            f"{gap:.4f} ({round(gap * num_test)}) | {group['final_acc'].mean():.4f} |"
        )
    return "\n".join(lines)


def cost(base: dict, args, work: Path, log) -> pd.DataFrame:
    path = write_synthetic_digits(work / "synthetic-digits.npz", args.examples, 1.0, seed=0)
    rows = []
    for clients in args.clients:
        tree = with_overrides(
            copy.deepcopy(base),
            [
                "data.source=npz",
                f"data.path={path}",
                "prepare.federated.dirichlet_alpha=100",
                f"prepare.federated.num_clients={clients}",
                "federated.partitions=[iid]",
                "federated.strategies=[fedavg]",
                "federated.client_fraction=1.0",
                "federated.local_epochs=1",
                f"federated.rounds={args.rounds}",
                "federated.personalization_steps=0",
                "federated.centralized=false",
                "federated.compression=none",
            ],
        )
        data = work / f"cost-{clients}"
        write_prepared(prepare_data(parse_params(copy.deepcopy(tree))), StagePaths.of("prepare", data).data)
        for engine, repeat in itertools.product(ENGINES, range(args.repeats)):
            folder = data / f"{engine.replace(' ', '-').replace(',', '')}-{repeat}"
            _, seconds, wall, peak = run(tree, engine, folder, data, log)
            rows.append(
                {
                    "clients": clients,
                    "engine": engine,
                    "repeat": repeat,
                    "round_s": statistics.median(seconds[1:]),
                    "startup_s": wall - sum(seconds),
                    "peak_mb": peak.peak / MB,
                    "added_mb": (peak.peak - peak.before) / MB,
                }
            )
            row = rows[-1]
            print(
                f"{clients:,} clients, {engine}, repeat {repeat}: {1 / row['round_s']:.2f} rounds/s, start-up "
                f"{row['startup_s']:.1f} s, peak memory {row['peak_mb']:.0f} MB ({row['added_mb']:.0f} MB added)",
                flush=True,
            )
    return pd.DataFrame(rows)


def cost_table(results: pd.DataFrame) -> str:
    lines = [
        "| clients | engine | rounds/s | start-up (s) | peak memory of the process tree (MB) | added by the run (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for (clients, engine), group in results.groupby(["clients", "engine"], sort=False):
        lines.append(
            f"| {clients:,} | {engine} | {1 / group['round_s'].median():.2f} | {group['startup_s'].median():.1f} | "
            f"{group['peak_mb'].median():.0f} | {group['added_mb'].median():.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = benchmark_parser(__doc__, "federated-flower", "part, strategy or clients, engine, seed or repeat, ...")
    parser.add_argument("--equivalence-clients", type=int, default=10)
    parser.add_argument("--equivalence-rounds", type=int, default=10)
    parser.add_argument("--clients", nargs="+", type=int, default=[10, 100, 1000])
    parser.add_argument("--rounds", type=int, default=5, help="cost: rounds per run, the first a warm-up")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--examples", type=int, default=25_000, help="cost: images in the synthetic data set")
    parser.add_argument("--skip", choices=["equivalence", "cost"], help="leave one part out")
    args = parser.parse_args()
    base = base_params(args)
    threads = parse_params(copy.deepcopy(base)).trainer_for("federated").num_threads
    print(f"torch threads per process: {threads}; CPUs: {psutil.cpu_count()}; torch {torch.__version__}", flush=True)
    started = time.perf_counter()
    tables = []
    with open(args.log, "w") as log, scratch_store("federated-flower") as work:
        if args.skip != "equivalence":
            same = equivalence(base, args, work, log)
            num_test = len(
                __import__("numpy").load(work / f"equivalence-{args.seeds[0]}/data/prepared/full.npz")["y_test"]
            )
            tables.append(f"Equivalence, seeds {args.seeds}:\n\n{equivalence_table(same, num_test)}")
            if args.csv:
                same.to_csv(args.csv.with_suffix(".equivalence.csv"), index=False)
        if args.skip != "cost":
            spent = cost(base, args, work, log)
            tables.append(
                f"Cost, {args.examples:,} examples, {args.rounds} rounds, median of {args.repeats}:\n\n"
                + cost_table(spent)
            )
            if args.csv:
                spent.to_csv(args.csv.with_suffix(".cost.csv"), index=False)
    print(f"\n{time.perf_counter() - started:.0f} s in all\n\n" + "\n\n".join(tables))


if __name__ == "__main__":
    main()
