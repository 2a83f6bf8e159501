"""Benchmark: what the federated simulation costs beyond the clients' own training, for 10 and 100 clients.

Clients run one after another in one process. Each round's wall time (evaluation excluded)
is split into the clients' local training (forward, backward, optimizer steps over their
batches) and everything else: sampling, sending and decoding the model, encoding and
aggregating updates, resetting the shared trainer. The overhead is that rest over the local
training time. For reference it also times the same local training in a bare PyTorch loop
(no Lightning, no simulation) and gives the round time over that. Every client takes part every
round (``client_fraction`` 1) for one local epoch, on the IID partition, so 100 clients hold about
12 examples each: one local step.

    python -m benchmarks.federated_overhead                   # 10 and 100 clients, 3 repeats
    python -m benchmarks.federated_overhead --clients 100 --rounds 20

It runs the pipeline's own stage function in a temporary folder with its own MLflow store
and prints the table in docs/benchmarks.md (median over the repeats).
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from benchmarks.common import base_params, benchmark_parser, scratch_store, with_overrides
from pipeline.data.prepare import prepare_data, write_prepared
from pipeline.data.prepared import load_task, read_arrays
from pipeline.models.classifier import build_classifier
from pipeline.paradigms.federated.client import make_clients
from pipeline.paradigms.federated.run import run_federated
from pipeline.params import parse_params
from pipeline.paths import StagePaths
from pipeline.seeding import seed_everything
from pipeline.training.optimizers import build_optimizer


def plain_torch_compute(params, data_dir, rounds: int) -> float:
    """Seconds per round of the same local training in a bare PyTorch loop: no Lightning, no simulation.

    Every client, every round: one epoch of its batches from a fresh optimizer, as in the simulation.
    """
    data = load_task(data_dir / "full.npz")
    clients = make_clients(
        data.X["train"], data.y["train"], read_arrays(data_dir / "federated.npz")["iid"], torch.device("cpu")
    )
    seed_everything(params.seed)
    model = build_classifier(params.model, data.input_shape, data.num_classes)
    seconds = 0.0
    generator = torch.Generator().manual_seed(params.seed)
    for _ in range(rounds):
        for client in clients:
            optimizer = build_optimizer(model.parameters(), params.trainer_for("federated"))
            started = time.perf_counter()
            for X, y in client.batches(params.federated.local_batch_size, generator):
                loss = torch.nn.functional.cross_entropy(model(X), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            seconds += time.perf_counter() - started
    return seconds / rounds


def run_folder(work: Path, clients: int, repeat: int) -> Path:
    """Where a measured run writes its models and plot data."""
    return work / f"run-{clients}-{repeat}"


def measure(base: dict, clients: int, rounds: int, repeat: int, work, log) -> dict:
    tree = with_overrides(
        copy.deepcopy(base),
        [
            f"prepare.federated.num_clients={clients}",
            "federated.partitions=[iid]",
            "federated.strategies=[fedavg]",
            "federated.client_fraction=1.0",
            "federated.local_epochs=1",
            f"federated.rounds={rounds}",
            "federated.personalization_steps=0",
            "federated.centralized=false",
            "federated.compression=none",
        ],
    )
    params = parse_params(tree)
    paths = StagePaths.of("federated", work / f"clients-{clients}").writing_to(run_folder(work, clients, repeat))
    write_prepared(prepare_data(params), paths.data)
    with contextlib.redirect_stderr(log):
        run = run_federated(params, paths)["iid/fedavg"]
    plain = plain_torch_compute(params, paths.data, rounds)
    return {
        "clients": clients,
        "repeat": repeat,
        "round_ms": 1000 * run["time/fit_seconds"] / rounds,
        "local_ms": 1000 * run["time/local_compute_seconds"] / rounds,
        "overhead": run["time/simulation_overhead"],
        "plain_torch_ms": 1000 * plain,
        "overhead_vs_plain_torch": run["time/fit_seconds"] / rounds / plain - 1,
        "examples_per_client": len(prepare_data(params).full.y["train"]) / clients,
    }


def main() -> None:
    parser = benchmark_parser(__doc__, "federated-overhead", "clients, repeat, round_ms, local_ms, overhead")
    parser.add_argument("--clients", nargs="+", type=int, default=[10, 100])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    base = base_params(args)
    rows = []
    with open(args.log, "w") as log, scratch_store("federated-overhead") as work:
        for clients in args.clients:
            for repeat in range(args.repeats):
                rows.append(measure(base, clients, args.rounds, repeat, work, log))
                row = rows[-1]
                print(
                    f"{clients} clients, repeat {repeat}: round {row['round_ms']:.1f} ms, local training "
                    f"{row['local_ms']:.1f} ms "
                    f"(overhead {100 * row['overhead']:.1f} %), bare PyTorch {row['plain_torch_ms']:.1f} ms",
                    flush=True,
                )
    results = pd.DataFrame(rows)
    if args.csv:
        results.to_csv(args.csv, index=False)
    lines = [
        "| clients | examples per client | round (ms) | local training in the simulation (ms) | overhead over it | "
        "same training in bare PyTorch (ms) | round over bare PyTorch |",
        "|---|---|---|---|---|---|---|",
    ]
    for clients, group in results.groupby("clients"):
        o, p = 100 * group["overhead"], 100 * group["overhead_vs_plain_torch"]
        lines.append(
            f"| {clients} | {group['examples_per_client'].iloc[0]:.0f} | {statistics.median(group['round_ms']):.1f} | "
            f"{statistics.median(group['local_ms']):.1f} | {o.median():.1f} % ({o.min():.1f}-{o.max():.1f} %) | "
            f"{statistics.median(group['plain_torch_ms']):.1f} | +{p.median():.1f} % ({p.min():.1f}-{p.max():.1f} %) |"
        )
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
