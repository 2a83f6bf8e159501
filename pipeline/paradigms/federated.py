"""Federated learning: clients train locally on data that never leaves them; a server aggregates their updates.

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

from pipeline.config.schema import Params
from pipeline.data.prepared import PREPARED_DIR, TaskData, load_task, read_arrays
from pipeline.errors import DataError
from pipeline.federated.aggregation import build_server_step
from pipeline.federated.client import LocalTrainer, make_clients
from pipeline.federated.layout import StateLayout
from pipeline.federated.personalization import personalize
from pipeline.federated.privacy import PrivacyAccountant, PrivateMean
from pipeline.federated.server import Server
from pipeline.federated.simulation import RoundRecord, clients_per_round, run_rounds
from pipeline.federated.wire import Codec
from pipeline.io import atomic_dir
from pipeline.memory import PeakMemory, estimate_training_memory
from pipeline.models.checkpoint import save_classifier
from pipeline.models.lightning_module import OUTPUT
from pipeline.models.reuse import classifier_with, starting_classifier
from pipeline.paradigms.pretrain import BASE_CHECKPOINT
from pipeline.paradigms.tracked import log_confusions, size_on_disk, train_tracked, training_sections
from pipeline.seeding import rng_for, seed_everything
from pipeline.tracking import figures
from pipeline.tracking.outputs import PLOTS_DIR, write_csv
from pipeline.tracking.runs import stage_run
from pipeline.training.runner import FitResult
from pipeline.training.scores import classification_scores

STAGE = "federated"
SECTIONS = training_sections(STAGE)
MODEL_DIR = Path("models/federated")
CENTRALIZED = "centralized"
MB = 1e6


def run_federated(
    params: Params,
    data_dir: Path = PREPARED_DIR,
    base_checkpoint: Path = BASE_CHECKPOINT,
    model_dir: Path = MODEL_DIR,
    plots_dir: Path = PLOTS_DIR / STAGE,
) -> dict[str, dict]:
    """The centralised baseline, then every partition x strategy; the models folder appears once all are saved."""
    cfg = params.federated
    data = load_task(Path(data_dir) / "full.npz")
    partitions = load_partitions(Path(data_dir) / "federated.npz", cfg.partitions, len(data.y["train"]))
    start = starting_classifier(params.model, data, base_checkpoint, cfg.init_from_base, params.seed).state_dict()
    runs: dict[str, dict] = {}
    histories: dict[str, list[dict]] = {}
    with atomic_dir(model_dir) as out:
        if cfg.centralized:
            runs[CENTRALIZED] = train_centralized(params, data, start, out)
        reference = runs.get(CENTRALIZED, {}).get("test/acc")
        for partition in cfg.partitions:
            for strategy in cfg.strategies:
                variant = f"{partition}/{strategy}"
                runs[variant], histories[variant] = federate(params, data, partitions[partition], partition, strategy, start, out, reference)
    write_federated_plots(plots_dir, runs, histories)
    return runs


def load_partitions(path: Path, wanted: list[str], num_train: int) -> dict[str, np.ndarray]:
    arrays = read_arrays(path)
    for name in wanted:
        if name not in arrays:
            raise DataError(f"{path}: no '{name}' partition (it has {', '.join(sorted(arrays))}); re-run `dvc repro prepare`")
        if len(arrays[name]) != num_train:
            raise DataError(f"{path}: the '{name}' partition covers {len(arrays[name])} examples, full.npz trains on {num_train}; re-run `dvc repro prepare`")
    return {name: arrays[name] for name in wanted}


def train_centralized(params: Params, data: TaskData, start: dict[str, torch.Tensor], out: Path) -> dict:
    """The same model and start on the pooled training data, for the clients' epoch budget at their batch size."""
    cfg = params.federated
    budget = {"max_epochs": cfg.epoch_budget(), "batch_size": cfg.local_batch_size}
    pooled = params.model_copy(update={STAGE: cfg.model_copy(update={"trainer": cfg.trainer.model_copy(update=budget)})})
    seed_everything(params.seed)
    entry, _ = train_tracked(
        pooled, STAGE, CENTRALIZED, CENTRALIZED, SECTIONS, classifier_with(params.model, data, start), data, out / f"{CENTRALIZED}.pt",
        tags={"init": _init_tag(params), "epoch_budget": str(budget["max_epochs"])},
    )
    return entry


def _init_tag(params: Params) -> str:
    return "pretrained base" if params.federated.init_from_base else "random"


class RoundMonitor:
    """After each round: the global model's validation and test scores, logged with ``step`` = round,
    one progress line on the terminal, and a history row for the plots."""

    def __init__(self, trainer: LocalTrainer, server: Server, data: TaskData, label: str, rounds: int, accountant: Optional[PrivacyAccountant] = None):
        self.trainer, self.server, self.label, self.rounds, self.accountant = trainer, server, label, rounds, accountant
        self.X = {split: torch.from_numpy(data.X[split]) for split in ("val", "test")}
        self.y = {split: data.y[split] for split in ("val", "test")}
        self.history: list[dict] = []
        self.megabytes = 0.0

    def __call__(self, record: RoundRecord) -> None:
        self.trainer.start_from(self.server.global_)
        scores = {f"{split}/{name}": value for split in self.X for name, value in classification_scores(self.trainer.predict(self.X[split]), self.y[split]).items()}
        self.megabytes += (record.bytes_down + record.bytes_up) / MB
        row = {"round": record.round, **scores, **record.as_metrics(), "comm/megabytes_so_far": self.megabytes}
        if self.accountant:
            row |= {"privacy/epsilon": self.accountant.spend_round(), "privacy/clients_clipped": float(record.clients_clipped)}
        self.history.append(row)
        mlflow.log_metrics({k: v for k, v in row.items() if k != "round"}, step=record.round)
        kept = "  (no client reported: global model kept)" if record.clients_reported == 0 and not self.accountant else ""
        kept += f"  epsilon {row['privacy/epsilon']:.2f}" if self.accountant else ""
        print(
            f"[{self.label}] round {record.round}/{self.rounds}  clients {record.clients_reported}/{record.clients_sampled}  "
            f"val/acc {scores['val/acc']:.4f}  test/acc {scores['test/acc']:.4f}  MB {self.megabytes:.2f}{kept}",
            file=sys.stderr, flush=True,
        )


def federate(
    params: Params,
    data: TaskData,
    assignment: np.ndarray,
    partition: str,
    strategy: str,
    start: dict[str, torch.Tensor],
    out: Path,
    centralized_acc: Optional[float] = None,
) -> tuple[dict, list[dict]]:
    """One federated run; returns ``{"run_id": ..., <metric>: value}`` and its per-round history."""
    cfg, trainer_cfg = params.federated, params.trainer_for(STAGE)
    variant = f"{partition}/{strategy}"
    label = f"{STAGE}/{variant}"
    seed_everything(params.seed)
    model = classifier_with(params.model, data, start)
    layout = StateLayout.of(model)
    codec = Codec(cfg.compression, layout, cfg.topk_fraction)
    trainer = LocalTrainer(
        model, data.num_classes, trainer_cfg, codec, cfg.local_batch_size,
        prox_mu=cfg.fedprox.mu if strategy == "fedprox" else 0.0, error_feedback=cfg.error_feedback,
    )
    clients = make_clients(data.X["train"], data.y["train"], assignment, trainer.device)
    private_mean, accountant = _privacy(params, variant, len(clients))
    server = Server(trainer.weights(), codec, build_server_step(strategy, cfg, layout.param_mask()), private_mean)
    monitor = RoundMonitor(trainer, server, data, label, cfg.rounds, accountant)
    with stage_run(params, STAGE, paradigm="federated", variant=variant, sections=SECTIONS) as run:
        mlflow.set_tags({
            "partition": partition, "strategy": strategy, "compression": cfg.compression, "init": _init_tag(params),
            "clients": str(len(clients)), "device": str(trainer.device), "precision": trainer_cfg.precision,
            "optimizer": type(trainer.optimizer.optimizer).__name__, "dp": str(cfg.dp.enabled).lower(),
        })
        with PeakMemory(trainer.device) as peak:
            records = run_rounds(server, trainer, clients, cfg, rng_for(params.seed, f"{STAGE}/{variant}"), monitor)
        trainer.start_from(server.global_)
        logits = trainer.predict(monitor.X["test"])
        last = monitor.history[-1]
        metrics = _final_metrics(logits, data, records, layout)
        metrics |= {k: last[k] for k in ("val/acc", "val/loss")}  # the model the run ends with (no best-round pick)
        metrics |= estimate_training_memory(model, trainer.optimizer.optimizer, trainer_cfg.precision).as_metrics()
        metrics |= {"memory/peak_bytes": peak.peak_bytes, "memory/measured_state_bytes": trainer.state_bytes,
                    "data/labels_used": sum(len(client) for client in clients),
                    "fl/clients": len(clients), "fl/clients_per_round": clients_per_round(cfg, len(clients))}
        if centralized_acc is not None:
            metrics["compare/acc_gap_vs_centralized"] = metrics["test/acc"] - centralized_acc
        if accountant:
            metrics |= {"privacy/epsilon": last["privacy/epsilon"], "privacy/delta": cfg.dp.delta,
                        "privacy/clipped_share": sum(r.clients_clipped for r in records) / max(1, sum(r.clients_reported for r in records))}
        if cfg.personalization_steps:
            metrics |= _personalize(trainer, clients, server.global_, cfg.personalization_steps, monitor.X["test"], data, params.seed, variant, label)
            trainer.start_from(server.global_)
        saved_at = out / f"{variant.replace('/', '-')}.pt"
        save_classifier(saved_at, model, params.model, data.input_shape, data.classes)
        metrics["model/checkpoint_bytes"] = size_on_disk(saved_at)
        mlflow.log_metrics({k: v for k, v in metrics.items() if k not in last}, step=cfg.rounds)  # test/acc, ...: logged per round
        log_confusions(FitResult(metrics, monitor.history, {OUTPUT: (data.y["test"], logits.argmax(dim=1).numpy())}), {OUTPUT: data.classes}, label)
        _log_rounds_figure(monitor.history, centralized_acc, label)
        mlflow.log_artifact(str(saved_at), "model")
    return {"run_id": run.info.run_id, **metrics}, monitor.history


def _privacy(params: Params, variant: str, num_clients: int) -> tuple[Optional[Callable[[torch.Tensor], PrivateMean]], Optional[PrivacyAccountant]]:
    """DP-FedAvg's noisy mean and its accountant when ``federated.dp.enabled``, else nothing."""
    cfg = params.federated
    if not cfg.dp.enabled:
        return None, None
    dp, expected = cfg.dp, cfg.client_fraction * num_clients
    noise = torch.Generator().manual_seed(int(rng_for(params.seed, f"{STAGE}/{variant}/dp").integers(2**62)))
    return (
        lambda start: PrivateMean(start, dp.clip_norm, dp.noise_multiplier, expected, noise),
        PrivacyAccountant(dp.noise_multiplier, cfg.client_fraction, dp.delta),
    )


def _log_rounds_figure(history: list[dict], centralized_acc: Optional[float], label: str) -> None:
    fig = figures.federated_rounds_figure(
        [row["round"] for row in history], [row["test/acc"] for row in history],
        [row["comm/megabytes_so_far"] for row in history], centralized_acc, label,
    )
    mlflow.log_figure(fig, "plots/rounds.png")
    figures.close(fig)


def _final_metrics(logits: torch.Tensor, data: TaskData, records: list[RoundRecord], layout: StateLayout) -> dict[str, float]:
    """The tracking contract's test metrics, communication totals and time split of the whole simulation."""
    down, up = sum(r.bytes_down for r in records), sum(r.bytes_up for r in records)
    fit, local = sum(r.seconds for r in records), sum(r.local_seconds for r in records)
    samples = sum(r.local_samples for r in records)
    uploads = sum(r.clients_reported for r in records)
    return {
        **{f"test/{k}": v for k, v in classification_scores(logits, data.y["test"], data.num_classes).items()},  # as logged for the last round
        "comm/bytes_down_total": down,
        "comm/bytes_up_total": up,
        "comm/bytes_total": down + up,
        "comm/upload_bytes_per_client": up / uploads if uploads else 0.0,
        "comm/upload_compression": (4 * layout.numel * uploads / up) if up else 1.0,  # float32 weights / bytes sent
        "fl/rounds": len(records),
        "fl/rounds_without_reports": sum(r.clients_reported == 0 for r in records),
        "time/fit_seconds": fit,
        "time/local_compute_seconds": local,
        "time/simulation_overhead": (fit - local) / local if local else 0.0,
        "throughput/train_samples_per_s": samples / local if local else 0.0,
    }


def _personalize(trainer: LocalTrainer, clients, global_: torch.Tensor, steps: int, X_test: torch.Tensor, data: TaskData, seed: int, variant: str, label: str) -> dict[str, float]:
    rows = personalize(trainer, clients, global_, steps, X_test, data.y["test"], data.num_classes, rng_for(seed, f"{STAGE}/{variant}/personalize"))
    before, after = (np.array([row[key] for row in rows]) for key in ("acc_before", "acc_after"))
    mlflow.log_table({key: [row[key] for row in rows] for key in rows[0]}, "personalization.json")
    fig = figures.personalization_figure([row["client"] for row in rows], before.tolist(), after.tolist(), f"{label}: {steps} local steps")
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
            personal.append({"model": f"{variant} · global", "variant": variant, "acc": run["personal/acc_before_mean"]})
            personal.append({"model": f"{variant} · personalised", "variant": variant, "acc": run["personal/acc_after_mean"]})
    write_csv(plots_dir / "personalization.csv", personal, columns=["model", "variant", "acc"])
