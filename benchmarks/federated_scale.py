"""Benchmark: federated simulation rounds per second for 10, 100 and 1,000 clients.

The digits data (1,797 examples) is too small for 1,000 clients, so this writes a larger
synthetic ``.npz`` first: the digits tiled to ``--examples`` images (8x8, one channel) with
Gaussian noise of ``--noise`` (on the 0-16 pixel scale) added to each copy, labels kept. The
pipeline's ``prepare`` splits it as usual (about 65 % of it trains) and every client count shares
the same data, so more clients means fewer examples each (25,000 examples: about 1,600 per client
for 10 clients, 16 for 1,000).

Each client count and each ``--engines`` value (the in-process engine's ``federated.batched``: clients one
after another, ``sequential``, or a round's clients as one batched computation, ``batched``) then runs exactly
what ``benchmarks.federated_overhead`` runs (its ``measure``: the pipeline's ``prepare_data``/``write_prepared``
and ``run_federated`` in a temporary folder with its own MLflow store): one simulation, IID partition, FedAvg,
every client every round (``client_fraction`` 1), 1 local epoch at ``federated.local_batch_size``, no compression, no
personalisation, no centralised baseline; ``--rounds`` rounds (default 5). Seconds per round are
each round's wall time (evaluation of the global model after the round excluded, as the
pipeline's ``round/seconds`` metric), median over the rounds after the first (a warm-up) and over
``--repeats``; rounds/s is one over it. The simulation's overhead over the clients' local training
(everything else in a round, over the local training time), and the same local training in a bare
PyTorch loop with the round time over it, come from ``federated_overhead`` (means over all rounds,
the first included; median over the repeats). Its bare loop trains the clients one after another on the
CPU only, so the two bare-loop columns are left out of the table on a GPU.

    python -m benchmarks.federated_scale      # 10, 100, 1,000 clients, both engines, 5 rounds, 3 repeats
    python -m benchmarks.federated_scale --clients 10 100 --rounds 3 --repeats 1 --examples 5000   # a quick check
    python -m benchmarks.federated_scale --device cuda --clients 10 100 1000 10000 --examples 250000   # on a GPU

``--device`` (default: cuda when there is one) sets ``trainer.accelerator``: the clients' data and
the shared local trainer live there. The model is ``params.yaml``'s (``--set model.hidden_sizes=...``).
Per-round output goes to ``--log``; the table is printed; ``--csv`` writes one row per client count,
engine and repeat. torch's thread count is ``trainer.num_threads`` (``--set trainer.num_threads=all``).
"""

from __future__ import annotations

import copy
import itertools
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import base_params, benchmark_parser, scratch_store, with_overrides
from benchmarks.devices import add_device_option, describe, device_overrides, model_words, pick_device
from benchmarks.federated_overhead import measure, run_folder
from pipeline.params import parse_params


def write_synthetic_digits(path: Path, examples: int, noise: float, seed: int) -> Path:
    """The digits tiled to ``examples`` images (N×1×8×8 float32, labels int64), each copy with its own noise."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    take = np.arange(examples) % len(digits.target)
    X = digits.images[take][:, None, :, :] + rng.normal(0.0, noise, size=(examples, 1, 8, 8))
    np.savez(path, X=np.clip(X, 0.0, None).astype(np.float32), y=digits.target[take].astype(np.int64))
    return path


def per_round_seconds(plots_dir: Path) -> list[float]:
    """Each round's wall time from the run's ``rounds.csv`` (``round/seconds``: the pipeline's own timing)."""
    return pd.read_csv(plots_dir / "rounds.csv")["round/seconds"].tolist()


def summary_table(results: pd.DataFrame, bare_torch: bool) -> str:
    head = (
        "| clients | examples per client | engine | s per round | rounds/s | simulation overhead over the local "
        "training |"
    )
    rule = "|---|---|---|---|---|---|"
    if bare_torch:
        head += " same local training, bare PyTorch (s) | round over bare PyTorch |"
        rule += "---|---|"
    lines = [head, rule]
    for (clients, engine), group in results.groupby(["clients", "engine"], sort=False):
        seconds = statistics.median(s for per_run in group["round_seconds"] for s in per_run[1:])  # round 1: warm-up
        line = (
            f"| {clients:,} | {group['examples_per_client'].iloc[0]:,.0f} | {engine} | {seconds:.3f} | "
            f"{1 / seconds:.2f} | {100 * group['overhead'].median():.1f} % |"
        )
        if bare_torch:  # federated_overhead's figures: means over all rounds, the first included, on both sides
            plain, over = statistics.median(group["plain_torch_ms"]) / 1000, group["overhead_vs_plain_torch"].median()
            line += f" {plain:.3f} | {100 * over:+.0f} % |"
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = benchmark_parser(
        __doc__, "federated-scale", "clients, engine, repeat, round_ms, local_ms, overhead, round_seconds"
    )
    parser.add_argument("--clients", nargs="+", type=int, default=[10, 100, 1000])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per run, the first a warm-up (at least 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--engines",
        nargs="+",
        choices=["sequential", "batched"],
        default=["sequential", "batched"],
        help="in-process client training to compare: sequential (federated.batched false) or batched",
    )
    parser.add_argument(
        "--examples", type=int, default=25_000, help="images in the synthetic data set (about 65 %% train)"
    )
    parser.add_argument(
        "--noise", type=float, default=1.0, help="std of the noise added to each copy (pixels are 0-16)"
    )
    add_device_option(parser)
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be at least 2: the first round is a warm-up, excluded")
    device = pick_device(args.device)
    started = time.perf_counter()
    rows = []
    with open(args.log, "w") as log, scratch_store("federated-scale") as work:
        path = write_synthetic_digits(work / "synthetic-digits.npz", args.examples, args.noise, seed=0)
        # dirichlet_alpha: prepare draws every partition, the unused Dirichlet one too, and refuses a client with
        # fewer than min_samples_per_client examples; a mild skew keeps that draw possible with few examples per client
        base = with_overrides(
            base_params(args),
            [
                "data.source=npz",
                f"data.path={path}",
                "prepare.federated.dirichlet_alpha=100",
                *device_overrides(device),
            ],
        )
        params = parse_params(copy.deepcopy(base))
        print(
            f"device: {describe(device)}; {args.examples:,} synthetic 8x8 digits; model {model_words(params.model)}, "
            f"local batch {params.federated.local_batch_size}, {args.rounds} rounds",
            flush=True,
        )
        for clients, engine, repeat in itertools.product(args.clients, args.engines, range(args.repeats)):
            tree = with_overrides(copy.deepcopy(base), [f"federated.batched={str(engine == 'batched').lower()}"])
            row = measure(tree, clients, args.rounds, repeat, work / engine, log) | {"engine": engine}
            row["round_seconds"] = per_round_seconds(run_folder(work / engine, clients, repeat) / "plots")
            rows.append(row)
            timed = statistics.median(row["round_seconds"][1:])
            print(
                f"{clients:,} clients ({row['examples_per_client']:,.0f} examples each), {engine}, repeat {repeat}: "
                f"{timed:.3f} s per round ({1 / timed:.2f} rounds/s), simulation overhead "
                f"{100 * row['overhead']:.1f} %",
                flush=True,
            )
    results = pd.DataFrame(rows)
    if args.csv:
        results.to_csv(args.csv, index=False)
    print(
        f"\n{time.perf_counter() - started:.0f} s in all\n\n{summary_table(results, bare_torch=device.type == 'cpu')}"
    )


if __name__ == "__main__":
    main()
