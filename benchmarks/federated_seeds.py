"""Benchmark: federated strategies against centralised training, and update compression, over several seeds.

For each seed it runs the pipeline's own stage functions (prepare, then federated) on
``params.yaml`` with ``seed`` overridden and, unless ``--set`` says otherwise, the issue's
setting: 10 clients, Dirichlet alpha 0.1, every strategy on the IID and Dirichlet partitions.
It then re-runs FedAvg on the IID partition once per compression, and with differential
privacy (100 clients, a tenth per round) once per noise multiplier. Everything runs in a
temporary folder with its own MLflow store. It prints the tables in docs/benchmarks.md:
test accuracy per partition and strategy (mean ± std over the seeds) with the gap to the
centralised baseline, bytes uploaded and accuracy per compression, and epsilon and accuracy
per DP noise multiplier.

    python -m benchmarks.federated_seeds                       # seeds 0 1 2
    python -m benchmarks.federated_seeds --seeds 0 --compressions none int8
    python -m benchmarks.federated_seeds --set federated.local_epochs=5
    python -m benchmarks.federated_seeds --compressions --dp-noise \
        --set 'federated.partitions=[dirichlet, shards]' --set 'federated.strategies=[fedavg, fedprox, scaffold]'

Per-round output goes to ``--log`` (default: benchmark-federated.log); one line per run is printed.
"""

from __future__ import annotations

import contextlib
import copy
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import base_params, benchmark_parser, mean_std, scratch_store, with_overrides
from pipeline.data.prepare import prepare_data, write_prepared
from pipeline.paradigms.federated.run import CENTRALIZED, run_federated
from pipeline.params import parse_params
from pipeline.paths import StagePaths

ISSUE_SETTING = [
    "prepare.federated.num_clients=10",
    "prepare.federated.dirichlet_alpha=0.1",
    "federated.partitions=[iid, dirichlet]",
    "federated.strategies=[fedavg, fedprox, fedadam, fedavgm]",
    "federated.compression=none",
]
KEPT = (
    "test/acc",
    "test/f1_macro",
    "comm/bytes_up_total",
    "comm/bytes_total",
    "personal/acc_before_mean",
    "personal/acc_after_mean",
    "time/fit_seconds",
    "time/simulation_overhead",
    "privacy/epsilon",
    "privacy/clipped_share",
)
DP_SETTING = [
    "prepare.federated.num_clients={clients}",
    "prepare.federated.dirichlet_alpha=0.5",
    "federated.client_fraction=0.1",
    "federated.partitions=[iid]",
    "federated.strategies=[fedavg]",
    "federated.centralized=false",
    "federated.personalization_steps=0",
    "federated.dp.enabled=true",
    "federated.dp.noise_multiplier={noise}",
]


def run_setting(tree: dict, work: Path, log) -> list[dict]:
    params = parse_params(tree)
    paths = StagePaths.of("federated", work)
    write_prepared(prepare_data(params), paths.data)
    with contextlib.redirect_stderr(log):
        runs = run_federated(params, paths)
    return [{"variant": variant, **{k: run.get(k) for k in KEPT}} for variant, run in runs.items()]


def benchmark(
    base: dict, seeds: list[int], compressions: list[str], dp_noise: list[float], dp_clients: int, log
) -> pd.DataFrame:
    rows = []
    with scratch_store("federated") as work:
        for seed in seeds:
            tree = copy.deepcopy(base) | {"seed": seed}
            started = time.perf_counter()
            found = run_setting(tree, work / f"seed-{seed}", log)
            rows += [
                {"seed": seed, "experiment": "strategies", "compression": tree["federated"]["compression"], **row}
                for row in found
            ]
            shown = "  ".join(f"{r['variant']} {r['test/acc']:.3f}" for r in found)
            print(f"seed {seed} ({time.perf_counter() - started:.0f} s): {shown}", flush=True)
            for compression in compressions:
                one = with_overrides(
                    copy.deepcopy(tree),
                    [
                        "federated.partitions=[iid]",
                        "federated.strategies=[fedavg]",
                        "federated.centralized=false",
                        f"federated.compression={compression}",
                    ],
                )
                found = run_setting(one, work / f"seed-{seed}-{compression}", log)
                rows += [
                    {"seed": seed, "experiment": "compression", "compression": compression, **row} for row in found
                ]
                print(
                    f"seed {seed} iid/fedavg {compression}: test acc {found[0]['test/acc']:.3f}, "
                    f"uploaded {found[0]['comm/bytes_up_total'] / 1e6:.2f} MB",
                    flush=True,
                )
            for noise in dp_noise:
                one = with_overrides(
                    copy.deepcopy(tree), [k.format(clients=dp_clients, noise=noise) for k in DP_SETTING]
                )
                found = run_setting(one, work / f"seed-{seed}-dp-{noise}", log)
                rows += [{"seed": seed, "experiment": "privacy", "noise_multiplier": noise, **row} for row in found]
                print(
                    f"seed {seed} iid/fedavg, {dp_clients} clients, DP noise {noise}: test acc "
                    f"{found[0]['test/acc']:.3f}, "
                    f"epsilon {found[0]['privacy/epsilon']:.3g}",
                    flush=True,
                )
    return pd.DataFrame(rows)


def summary_tables(results: pd.DataFrame) -> str:
    """Markdown: accuracy per partition and strategy with the gap to centralised; bytes and accuracy per compression."""
    strategies = results[results["experiment"] == "strategies"]
    central = strategies[strategies["variant"] == CENTRALIZED].set_index("seed")["test/acc"]
    accuracy = strategies.pivot_table(index="seed", columns="variant", values="test/acc")
    lines = [
        "| run | test acc | gap to centralised (points) | vs fedavg on its partition (points, per seed) | macro-F1 | "
        "personalised acc (before → after) | uploaded (MB) | fit time (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant, group in strategies.groupby("variant", sort=False):
        by_seed = group.set_index("seed")
        gap = "" if variant == CENTRALIZED else mean_std(100 * (by_seed["test/acc"] - central), 1)
        fedavg = f"{variant.partition('/')[0]}/fedavg"
        paired = ""  # the same seed, partition and start: the difference a strategy makes, with its spread over seeds
        if variant != CENTRALIZED and variant != fedavg and fedavg in accuracy:
            paired = mean_std(100 * (accuracy[variant] - accuracy[fedavg]), 1)
        personal = (
            ""
            if by_seed["personal/acc_before_mean"].isna().all()
            else (f"{mean_std(by_seed['personal/acc_before_mean'])} → {mean_std(by_seed['personal/acc_after_mean'])}")
        )
        lines.append(
            f"| {variant} | {mean_std(by_seed['test/acc'])} | {gap} | {paired} | {mean_std(by_seed['test/f1_macro'])} "
            "| "
            f"{personal} | {mean_std(by_seed['comm/bytes_up_total'] / 1e6, 2)} | "
            f"{mean_std(by_seed['time/fit_seconds'], 2)} |"
        )
    compression = results[results["experiment"] == "compression"]
    if not compression.empty:
        plain = compression[compression["compression"] == "none"].set_index("seed")
        lines += [
            "",
            "| iid/fedavg compression | uploaded per run (MB) | upload vs none | test acc | change vs none (points) |",
            "|---|---|---|---|---|",
        ]
        for name, group in compression.groupby("compression", sort=False):
            by_seed = group.set_index("seed")
            ratio = (
                mean_std(by_seed["comm/bytes_up_total"] / plain["comm/bytes_up_total"], 3) if not plain.empty else ""
            )
            change = mean_std(100 * (by_seed["test/acc"] - plain["test/acc"]), 1) if not plain.empty else ""
            lines.append(
                f"| {name} | {mean_std(by_seed['comm/bytes_up_total'] / 1e6, 2)} | {ratio} | "
                f"{mean_std(by_seed['test/acc'])} | {change} |"
            )
    privacy = results[results["experiment"] == "privacy"]
    if not privacy.empty:
        lines += [
            "",
            "| DP noise multiplier | epsilon (delta 1e-5) | test acc | updates clipped |",
            "|---|---|---|---|",
        ]
        for noise, group in privacy.groupby("noise_multiplier", sort=False):
            lines.append(
                f"| {noise} | {group['privacy/epsilon'].iloc[0]:.3g} | {mean_std(group['test/acc'])} | "
                f"{mean_std(group['privacy/clipped_share'], 2)} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = benchmark_parser(__doc__, "federated", "seed, experiment, compression, variant, figures")
    parser.add_argument("--compressions", nargs="*", default=["none", "fp16", "int8", "topk"])
    parser.add_argument(
        "--dp-noise", nargs="*", type=float, default=[0.1, 0.3, 1.0], help="DP-FedAvg noise multipliers to run"
    )
    parser.add_argument(
        "--dp-clients", type=int, default=100, help="clients for the DP runs (a tenth take part each round)"
    )
    args = parser.parse_args()
    args.set = ISSUE_SETTING + args.set
    started = time.perf_counter()
    with open(args.log, "w") as log:
        results = benchmark(base_params(args), args.seeds, args.compressions, args.dp_noise, args.dp_clients, log)
    if args.csv:
        results.to_csv(args.csv, index=False)
    print(
        f"\n{summary_tables(results)}\n\n{len(results)} runs in {time.perf_counter() - started:.0f} s; per-round log "
        f"in {args.log}"
    )


if __name__ == "__main__":
    main()
