"""The ``federated`` stage: clients train locally on data that never leaves them; a server aggregates their updates.

One MLflow run per partition and strategy (``paradigm=federated``, variant
``<partition>/<strategy>``, e.g. ``dirichlet/fedprox``) and one centralised baseline on the
pooled data with the same model, start and epoch budget (``paradigm=centralized``). Every
federated run logs per round (``step`` = round) the global model's ``test/acc``, ``test/loss``,
``val/acc``, ``val/loss``, the clients sampled and reporting and the bytes sent each way;
then the tracking contract's final metrics, the communication totals, the simulation's
overhead over local compute, and personalisation (each client's accuracy before and after
fine-tuning the global model on its own data).

Data: ``full.npz`` (all classes) and ``federated.npz`` (which client holds each training example).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Optional

import mlflow
import numpy as np
import torch

from pipeline.config.schema import SharedParams
from pipeline.data.prepared import TaskData, load_task, read_arrays
from pipeline.errors import DataError
from pipeline.io import atomic_dir
from pipeline.memory import PeakMemory
from pipeline.models.reuse import classifier_with, starting_classifier
from pipeline.paradigms.federated import PARADIGM
from pipeline.paradigms.federated.client import LocalTrainer
from pipeline.paradigms.federated.config import FederatedConfig
from pipeline.paradigms.federated.flower.recipe import ClientRecipe
from pipeline.paradigms.federated.layout import StateLayout
from pipeline.paradigms.federated.parties import Federation, federation, round_rng
from pipeline.paradigms.federated.personalization import personalize
from pipeline.paradigms.federated.privacy import PrivacyAccountant
from pipeline.paradigms.federated.server import Server
from pipeline.paradigms.federated.simulation import RoundRecord, clients_per_round, run_rounds
from pipeline.paradigms.fitted import train_classifier
from pipeline.paths import StagePaths
from pipeline.seeding import rng_for, seed_everything
from pipeline.tracking import figures
from pipeline.tracking.contract import SavedModel, tracked_run
from pipeline.tracking.outputs import write_csv
from pipeline.training.lightning_module import OUTPUT
from pipeline.training.scores import classification_scores

STAGE = PARADIGM.stage
CENTRALIZED = "centralized"
MB = 1e6


def run_federated(params: SharedParams, paths: StagePaths = StagePaths.of(PARADIGM.stage)) -> dict[str, dict]:
    """The centralised baseline, then every partition x strategy; the models folder appears once all are saved."""
    cfg = params.federated
    data = load_task(paths.prepared(PARADIGM.task))
    partitions = load_partitions(paths.prepared("federated"), cfg.partitions, len(data.y["train"]))
    start = starting_classifier(params.model, data, paths.base, cfg.init_from_base, params.seed).state_dict()
    runs: dict[str, dict] = {}
    histories: dict[str, list[dict]] = {}
    with atomic_dir(paths.models) as out:
        if cfg.centralized:
            runs[CENTRALIZED] = train_centralized(params, data, start, out)
        reference = runs.get(CENTRALIZED, {}).get("test/acc")
        for partition in cfg.partitions:
            for strategy in cfg.strategies:
                variant = f"{partition}/{strategy}"
                runs[variant], histories[variant] = federate(
                    params, data, partitions[partition], partition, strategy, start, out, reference, paths
                )
    write_federated_plots(paths.plots, runs, histories)
    return runs


def load_partitions(path: Path, wanted: list[str], num_train: int) -> dict[str, np.ndarray]:
    arrays = read_arrays(path)
    for name in wanted:
        if name not in arrays:
            raise DataError(
                f"{path}: no '{name}' partition (it has {', '.join(sorted(arrays))}); re-run `dvc repro prepare`"
            )
        if len(arrays[name]) != num_train:
            raise DataError(
                f"{path}: the '{name}' partition covers {len(arrays[name])} examples, full.npz trains on {num_train}; "
                "re-run `dvc repro prepare`"
            )
    return {name: arrays[name] for name in wanted}


def train_centralized(params: SharedParams, data: TaskData, start: dict[str, torch.Tensor], out: Path) -> dict:
    """The same model and start on the pooled training data, for the clients' epoch budget at their batch size."""
    cfg = params.federated
    budget = {"max_epochs": cfg.epoch_budget(), "batch_size": cfg.local_batch_size}
    pooled = params.model_copy(
        update={STAGE: cfg.model_copy(update={"trainer": cfg.trainer.model_copy(update=budget)})}
    )
    seed_everything(params.seed)
    entry, _ = train_classifier(
        pooled,
        PARADIGM.run_spec(CENTRALIZED, paradigm=CENTRALIZED),
        classifier_with(params.model, data, start),
        data,
        out / f"{CENTRALIZED}.pt",
        tags={"init": _init_tag(params), "epoch_budget": str(budget["max_epochs"])},
    )
    return entry


def privacy_accountant(cfg: FederatedConfig) -> Optional[PrivacyAccountant]:
    """DP-FedAvg's accountant (epsilon spent per round) when ``federated.dp.enabled``, else None."""
    return PrivacyAccountant(cfg.dp.noise_multiplier, cfg.client_fraction, cfg.dp.delta) if cfg.dp.enabled else None


def _init_tag(params: SharedParams) -> str:
    return "pretrained base" if params.federated.init_from_base else "random"


class RoundMonitor:
    """After each round: the global model's validation and test scores, logged with ``step`` = round,
    one progress line on the terminal, and a history row for the plots."""

    def __init__(
        self,
        trainer: LocalTrainer,
        server: Server,
        data: TaskData,
        label: str,
        rounds: int,
        log_step: Callable[[dict[str, float], int], None],
        accountant: Optional[PrivacyAccountant] = None,
    ):
        self.trainer, self.server, self.label, self.rounds, self.accountant = trainer, server, label, rounds, accountant
        self.log_step = log_step
        self.X = {split: torch.from_numpy(data.X[split]) for split in ("val", "test")}
        self.y = {split: data.y[split] for split in ("val", "test")}
        self.history: list[dict] = []
        self.megabytes = 0.0

    def __call__(self, record: RoundRecord) -> None:
        self.trainer.start_from(self.server.global_)
        scores = {
            f"{split}/{name}": value
            for split in self.X
            for name, value in classification_scores(self.trainer.predict(self.X[split]), self.y[split]).items()
        }
        self.megabytes += (record.bytes_down + record.bytes_up) / MB
        row = {"round": record.round, **scores, **record.as_metrics(), "comm/megabytes_so_far": self.megabytes}
        if self.accountant:
            row |= {
                "privacy/epsilon": self.accountant.spend_round(),
                "privacy/clients_clipped": float(record.clients_clipped),
            }
        self.history.append(row)
        self.log_step({k: v for k, v in row.items() if k != "round"}, record.round)
        kept = (
            "  (no client reported: global model kept)" if record.clients_reported == 0 and not self.accountant else ""
        )
        kept += f"  epsilon {row['privacy/epsilon']:.2f}" if self.accountant else ""
        print(
            f"[{self.label}] round {record.round}/{self.rounds}  clients "
            f"{record.clients_reported}/{record.clients_sampled}  "
            f"val/acc {scores['val/acc']:.4f}  test/acc {scores['test/acc']:.4f}  MB {self.megabytes:.2f}{kept}",
            file=sys.stderr,
            flush=True,
        )


def federate(
    params: SharedParams,
    data: TaskData,
    assignment: np.ndarray,
    partition: str,
    strategy: str,
    start: dict[str, torch.Tensor],
    out: Path,
    centralized_acc: Optional[float] = None,
    paths: StagePaths = StagePaths.of(PARADIGM.stage),
) -> tuple[dict, list[dict]]:
    """One federated run; returns ``{"run_id": ..., <metric>: value}`` and its per-round history."""
    cfg = params.federated
    spec = PARADIGM.run_spec(f"{partition}/{strategy}")
    fed = federation(params, data, assignment, strategy, start, spec.variant)
    trainer, clients, server = fed.trainer, fed.clients, fed.server
    accountant = privacy_accountant(cfg)
    tags = {
        "partition": partition,
        "strategy": strategy,
        "compression": cfg.compression,
        "init": _init_tag(params),
        "clients": str(len(clients)),
        "dp": str(cfg.dp.enabled).lower(),
        "engine": cfg.engine,
        "client_training": fed.client_training,
    }
    if fed.not_batched:
        tags["client_training_reason"] = fed.not_batched
        print(f"[{spec.label}] clients train one after another: {fed.not_batched}", file=sys.stderr, flush=True)
    with tracked_run(params, spec, tags) as run:
        monitor = RoundMonitor(trainer, server, data, spec.label, cfg.rounds, run.log_step, accountant)
        with PeakMemory(trainer.device, trainer.model) as peak:
            records = _rounds(params, fed, data, paths, partition, strategy, spec.label, monitor)
        trainer.start_from(server.global_)
        logits = trainer.predict(monitor.X["test"])
        last = monitor.history[-1]
        metrics = final_metrics(logits, data, records, fed.layout)
        metrics |= {k: last[k] for k in ("val/acc", "val/loss")}  # the model the run ends with (no best-round pick)
        metrics |= {"fl/clients": len(clients), "fl/clients_per_round": clients_per_round(cfg, len(clients))}
        if centralized_acc is not None:
            metrics["compare/acc_gap_vs_centralized"] = metrics["test/acc"] - centralized_acc
        if accountant:
            reports = max(1, sum(r.clients_reported for r in records))
            metrics |= {
                "privacy/epsilon": last["privacy/epsilon"],
                "privacy/delta": cfg.dp.delta,
                "privacy/clipped_share": sum(r.clients_clipped for r in records) / reports,
            }
        if cfg.personalization_steps:
            metrics |= _personalize(
                trainer,
                clients,
                server.global_,
                cfg.personalization_steps,
                monitor.X["test"],
                data,
                params.seed,
                spec.variant,
                spec.label,
            )
            trainer.start_from(server.global_)
        _log_rounds_figure(monitor.history, centralized_acc, spec.label)
        local = sum(r.local_seconds for r in records)
        trained = trainer.trained(
            peak_bytes=peak.peak_bytes,
            labels_used=sum(len(client) for client in clients),
            fit_seconds=sum(r.seconds for r in records),
            samples_per_s=sum(r.local_samples for r in records) / local if local else 0.0,
            metrics=metrics,
            predictions={OUTPUT: (data.y["test"], logits.argmax(dim=1).numpy())},
            history=monitor.history,
            logged=frozenset(last),
            step=cfg.rounds,  # test/acc, ...: logged per round
            cannot_have=frozenset() if any(r.clients_reported for r in records) else frozenset({"train/loss"}),
        )
        saved = SavedModel.classifier(out / f"{spec.variant.replace('/', '-')}.pt", fed.model, params.model, data)
        return run.finish(trained, data, {OUTPUT: data.classes}, saved), monitor.history


def _rounds(
    params: SharedParams,
    fed: Federation,
    data: TaskData,
    paths: StagePaths,
    partition: str,
    strategy: str,
    label: str,
    monitor: RoundMonitor,
) -> list[RoundRecord]:
    """Every round on ``federated.engine``: the same server and client code in this process, or as a Flower app on
    Flower's simulation runtime (each client rebuilt in a worker from the prepared files, ``paths``)."""
    cfg = params.federated
    rng = round_rng(params, f"{partition}/{strategy}")
    if cfg.engine == "inprocess":
        return run_rounds(fed.server, fed.engine, fed.clients, cfg, rng, monitor)
    from pipeline.paradigms.federated.flower.simulation import simulate_on_flower

    recipe = ClientRecipe.of(
        params,
        strategy,
        partition,
        len(fed.clients),
        data.input_shape,
        data.num_classes,
        paths.prepared(PARADIGM.task),
        paths.prepared("federated"),
    )
    return simulate_on_flower(fed.server, recipe, len(fed.clients), cfg, rng, monitor, label)


def _log_rounds_figure(history: list[dict], centralized_acc: Optional[float], label: str) -> None:
    fig = figures.federated_rounds_figure(
        [row["round"] for row in history],
        [row["test/acc"] for row in history],
        [row["comm/megabytes_so_far"] for row in history],
        centralized_acc,
        label,
    )
    mlflow.log_figure(fig, "plots/rounds.png")
    figures.close(fig)


def final_metrics(
    logits: torch.Tensor, data: TaskData, records: list[RoundRecord], layout: StateLayout
) -> dict[str, float]:
    """The test scores of the final global model, communication totals and time split of the whole simulation."""
    down, up = sum(r.bytes_down for r in records), sum(r.bytes_up for r in records)
    fit, local = sum(r.seconds for r in records), sum(r.local_seconds for r in records)
    uploads = sum(r.clients_reported for r in records)
    return {
        **{
            f"test/{k}": v for k, v in classification_scores(logits, data.y["test"], data.num_classes).items()
        },  # as logged for the last round
        "comm/bytes_down_total": down,
        "comm/bytes_up_total": up,
        "comm/bytes_total": down + up,
        "comm/upload_bytes_per_client": up / uploads if uploads else 0.0,
        "comm/upload_compression": (4 * layout.numel * uploads / up) if up else 1.0,  # float32 weights / bytes sent
        "fl/rounds": len(records),
        "fl/rounds_without_reports": sum(r.clients_reported == 0 for r in records),
        "time/local_compute_seconds": local,
        "time/simulation_overhead": (fit - local) / local if local else 0.0,
    }


def _personalize(
    trainer: LocalTrainer,
    clients,
    global_: torch.Tensor,
    steps: int,
    X_test: torch.Tensor,
    data: TaskData,
    seed: int,
    variant: str,
    label: str,
) -> dict[str, float]:
    rows = personalize(
        trainer,
        clients,
        global_,
        steps,
        X_test,
        data.y["test"],
        data.num_classes,
        rng_for(seed, f"{STAGE}/{variant}/personalize"),
    )
    before, after = (np.array([row[key] for row in rows]) for key in ("acc_before", "acc_after"))
    mlflow.log_table({key: [row[key] for row in rows] for key in rows[0]}, "personalization.json")
    fig = figures.personalization_figure(
        [row["client"] for row in rows], before.tolist(), after.tolist(), f"{label}: {steps} local steps"
    )
    mlflow.log_figure(fig, "plots/personalization.png")
    figures.close(fig)
    return {
        "personal/acc_before_mean": float(before.mean()),
        "personal/acc_after_mean": float(after.mean()),
        "personal/gain_mean": float((after - before).mean()),
        "personal/clients_improved": int((after > before).sum()),
    }


def write_federated_plots(plots_dir: Path, runs: dict[str, dict], histories: dict[str, list[dict]]) -> None:
    """The CSVs behind ``dvc plots``: accuracy and bytes per round, final accuracy and cost per run, personalisation."""
    plots_dir = Path(plots_dir)
    write_csv(plots_dir / "rounds.csv", [{"variant": v, **row} for v, rows in histories.items() for row in rows])
    keys = ("test/acc", "test/f1_macro", "comm/bytes_total", "time/fit_seconds")
    write_csv(plots_dir / "runs.csv", [{"variant": v, **{k: run.get(k) for k in keys}} for v, run in runs.items()])
    personal = []
    for variant, run in runs.items():
        if "personal/acc_before_mean" in run:
            personal.append(
                {"model": f"{variant} · global", "variant": variant, "acc": run["personal/acc_before_mean"]}
            )
            personal.append(
                {"model": f"{variant} · personalised", "variant": variant, "acc": run["personal/acc_after_mean"]}
            )
    write_csv(plots_dir / "personalization.csv", personal, columns=["model", "variant", "acc"])
