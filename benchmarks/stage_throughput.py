"""Benchmark: training throughput of the pipeline's own training path against a hand-written PyTorch loop.

Both train the same model (``build_classifier`` from the ``model`` params) on the same synthetic
tensors (random float32 images of ``--shape``, random labels: for timing, not learning), with the
same loaders (``make_loaders``: batch size ``trainer.batch_size``, shuffled each epoch), the same
optimizer (``build_optimizer`` from the ``trainer`` params), the same precision and the same torch
flags (the Trainer's ``deterministic=True``: deterministic algorithms, no cuDNN benchmark).

- **pipeline**: what a training stage runs: ``ClassificationModule`` fitted by
  ``pipeline.training.runner.fit_and_test`` inside an MLflow run (``stage_run``, in a scratch store),
  with the runner's callbacks (per-epoch history, throughput, model-state probe, keeping the best
  epoch's weights) and MLflow logging; early stopping off (``trainer.early_stopping_patience`` null),
  ``--epochs`` epochs. A callback defined here times each epoch.
- **hand-written**: ``for X, y in loader``: move the batch to the device, forward, cross-entropy,
  ``zero_grad``, backward, ``step`` (plus a running train loss, which the module logs too); then a
  validation pass (loss and accuracy) per epoch, as the stage does.

Two figures per epoch, the first (warm-up) epoch excluded, median over the rest (and over
``--repeats``): **train**, the training batches alone (epoch start to the start of validation: what
the runner's ``throughput/train_samples_per_s`` also times), and **epoch**, everything one epoch
costs: training, validation and, for the pipeline, its per-epoch bookkeeping (callbacks, a copy of
an improved model's weights, MLflow logging), timed from one epoch's start to the next. The overhead is
pipeline over hand-written. CUDA is synchronised at every clock reading.

    python -m benchmarks.stage_throughput     # cnn 32-64-128 on 2,048 3x32x32 images, 6 epochs, 4 repeats (a minute)
    python -m benchmarks.stage_throughput --samples 512 --epochs 2 --repeats 1 --set "model.channels=[8]"  # quick
    # on a GPU: a model that keeps it busy, e.g. the ResNet-18-sized backbone (11.2 M parameters) on CIFAR-sized data
    python -m benchmarks.stage_throughput --device cuda --samples 50000 --val-samples 10000 --epochs 4 \\
        --set model.backbone=resnet --set "model.channels=[64, 128, 256, 512]" --set model.blocks_per_stage=2 \\
        --set trainer.batch_size=256                 # add --set trainer.precision=bf16-mixed for mixed precision
    # (params-gpu.yaml's model is the same with channels [64, 128, 256], batch 256, bf16-mixed)

The model comes from ``params.yaml`` with this script's defaults (``model.backbone=cnn``,
``model.channels=[32,64,128]``) under any ``--set``. Both sides read batches through the same
``DataLoader`` (``trainer.num_workers``, 0 by default: batches are gathered in the main process), so
on a fast GPU the loader can bound both. Per-epoch output of the pipeline side goes to ``--log``.
The table is printed; ``--csv`` writes one row per side, repeat and epoch.
"""

from __future__ import annotations

import contextlib
import copy
import os
import statistics
import time

import lightning.pytorch as pl
import pandas as pd
import torch
from torch import nn

from benchmarks.common import base_params, benchmark_parser, scratch_store, with_overrides
from benchmarks.devices import (
    add_device_option,
    autocast,
    describe,
    device_overrides,
    grad_scaler,
    model_words,
    pick_device,
    synthetic_images,
    train_step,
)
from pipeline.models.classifier import build_classifier
from pipeline.paradigms.pretrain import PARADIGM
from pipeline.params import parse_params
from pipeline.seeding import seed_everything
from pipeline.tracking.runs import stage_run
from pipeline.training.clock import now
from pipeline.training.lightning_module import ClassificationModule
from pipeline.training.optimizers import build_optimizer
from pipeline.training.runner import fit_and_test, make_loaders

STAGE = PARADIGM.stage  # a training stage with no trainer overrides of its own in the default params.yaml
DEFAULT_SETTING = ["model.backbone=cnn", "model.channels=[32, 64, 128]"]
PIPELINE, HAND = "pipeline (fit_and_test)", "hand-written PyTorch loop"


class EpochTimer(pl.Callback):
    """Per epoch: the training part (epoch start to validation start) and the whole epoch (start to next start)."""

    def __init__(self):
        self.starts: list[float] = []
        self.train: list[float] = []
        self.end = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.starts.append(now(pl_module.device))

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.train.append(now(pl_module.device) - self.starts[-1])

    def on_train_end(self, trainer, pl_module) -> None:
        self.end = now(pl_module.device)

    @property
    def epochs(self) -> list[float]:
        marks = self.starts + [self.end]
        return [b - a for a, b in zip(marks, marks[1:])]


def match_trainer_flags() -> None:
    """What the pipeline's Trainer (``deterministic=True``) sets, so the hand-written loop runs under the same flags."""
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True)


def pipeline_epochs(params, X, y, shape, classes, seed, log) -> tuple[list[dict], dict]:
    """The stage's path: ClassificationModule through fit_and_test in an MLflow run."""
    cfg = params.trainer_for(STAGE)
    seed_everything(seed)
    module = ClassificationModule(build_classifier(params.model, shape, classes), classes, cfg)
    timer = EpochTimer()
    with (
        contextlib.redirect_stderr(log),
        stage_run(params, PARADIGM.run_spec("throughput", paradigm="benchmark")) as run,
    ):
        trained = fit_and_test(
            module, make_loaders(X, y, cfg, seed), cfg, seed, run, label="throughput", extra_callbacks=[timer]
        )
    rows = [
        {"epoch": i + 1, "train_seconds": t, "epoch_seconds": e}
        for i, (t, e) in enumerate(zip(timer.train, timer.epochs))
    ]
    return rows, {
        "throughput/train_samples_per_s": trained.samples_per_s,
        "params/total": sum(p.numel() for p in module.parameters()),
    }


def hand_epochs(params, X, y, shape, classes, seed, device: torch.device) -> list[dict]:
    """The same training in plain PyTorch: same model, loaders, optimizer, precision; a validation pass per epoch."""
    cfg = params.trainer_for(STAGE)
    match_trainer_flags()
    seed_everything(seed)
    model = build_classifier(params.model, shape, classes).to(device)
    optimizer = build_optimizer(model.parameters(), cfg)
    scaler = grad_scaler(cfg.precision, device)
    loaders = make_loaders(X, y, cfg, seed)
    rows = []
    for epoch in range(cfg.max_epochs):
        started = now(device)
        model.train()
        running = torch.zeros((), device=device)
        for xb, yb in loaders["train"]:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            running += train_step(model, optimizer, scaler, xb, yb, cfg.precision, device)
        trained = now(device)
        model.eval()
        val_loss, correct, seen = torch.zeros((), device=device), torch.zeros((), device=device), 0
        with torch.no_grad(), autocast(cfg.precision, device):
            for xb, yb in loaders["val"]:
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                logits = model(xb)
                val_loss += nn.functional.cross_entropy(logits, yb, reduction="sum").float()
                correct += (logits.argmax(dim=1) == yb).sum()
                seen += len(yb)
        # read the epoch's figures, as the stage logs them
        float(running), float(val_loss / seen), float(correct / seen)
        rows.append({"epoch": epoch + 1, "train_seconds": trained - started, "epoch_seconds": now(device) - started})
    return rows


def summary_table(results: pd.DataFrame, train_samples: int) -> str:
    timed = results[results["epoch"] > 1]  # the first epoch is the warm-up
    med = {
        side: {k: statistics.median(group[k]) for k in ("train_seconds", "epoch_seconds")}
        for side, group in timed.groupby("side")
    }
    lines = [
        "| path | train samples/s | train s/epoch | epoch s (train + val + bookkeeping) | overhead: train | overhead: "
        "epoch |",
        "|---|---|---|---|---|---|",
    ]
    for side in (HAND, PIPELINE):
        m, h = med[side], med[HAND]
        over = "–" if side == HAND else f"{100 * (m['train_seconds'] / h['train_seconds'] - 1):+.1f} %"
        over_epoch = "–" if side == HAND else f"{100 * (m['epoch_seconds'] / h['epoch_seconds'] - 1):+.1f} %"
        lines.append(
            f"| {side} | {train_samples / m['train_seconds']:,.0f} | {m['train_seconds']:.3f} | "
            f"{m['epoch_seconds']:.3f} | {over} | {over_epoch} |"
        )
    fast = {
        side: {k: group[k].min() for k in ("train_seconds", "epoch_seconds")} for side, group in timed.groupby("side")
    }
    lines.append(
        f"\nFrom the fastest epoch of each side instead (less sensitive to other load on the machine): overhead "
        f"train {100 * (fast[PIPELINE]['train_seconds'] / fast[HAND]['train_seconds'] - 1):+.1f} %, "
        f"epoch {100 * (fast[PIPELINE]['epoch_seconds'] / fast[HAND]['epoch_seconds'] - 1):+.1f} %"
    )
    return "\n".join(lines)


def main() -> None:
    parser = benchmark_parser(__doc__, "stage-throughput", "side, repeat, epoch, train_seconds, epoch_seconds")
    parser.add_argument("--samples", type=int, default=2048, help="training examples")
    parser.add_argument("--val-samples", type=int, help="validation examples (default: a quarter of --samples)")
    parser.add_argument(
        "--shape", type=int, nargs="+", default=[3, 32, 32], metavar="DIM", help="one example's shape, e.g. C H W"
    )
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=6, help="epochs per run, the first a warm-up (at least 2)")
    parser.add_argument("--repeats", type=int, default=4, help="runs of each side, alternating which goes first")
    add_device_option(parser)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is a warm-up, excluded")
    device = pick_device(args.device)
    args.set = DEFAULT_SETTING + args.set
    tree = with_overrides(
        base_params(args),
        [
            f"trainer.max_epochs={args.epochs}",
            f"{STAGE}.trainer.max_epochs={args.epochs}",
            "trainer.early_stopping_patience=null",
            *device_overrides(device),
        ],
    )
    params = parse_params(copy.deepcopy(tree))
    shape, val = tuple(args.shape), args.val_samples or max(1, args.samples // 4)
    X_train, y_train = synthetic_images(args.samples, shape, args.classes, seed=params.seed)
    X_val, y_val = synthetic_images(val, shape, args.classes, seed=params.seed + 1)
    X, y = {"train": X_train, "val": X_val, "test": X_val}, {"train": y_train, "val": y_val, "test": y_val}
    print(
        f"device: {describe(device)}; model {model_words(params.model)}, precision "
        f"{params.trainer_for(STAGE).precision}; "
        f"{args.samples:,} training and {val:,} validation examples of shape {shape}, batch "
        f"{params.trainer_for(STAGE).batch_size}, "
        f"{args.epochs} epochs (first excluded)",
        flush=True,
    )
    rows, runner_throughput = [], []
    started = time.perf_counter()
    with open(args.log, "w") as log, scratch_store("stage-throughput"):
        for repeat in range(args.repeats):
            order = (HAND, PIPELINE) if repeat % 2 == 0 else (PIPELINE, HAND)
            for side in order:
                if side == HAND:
                    found = hand_epochs(params, X, y, shape, args.classes, params.seed + repeat, device)
                else:
                    found, metrics = pipeline_epochs(params, X, y, shape, args.classes, params.seed + repeat, log)
                    runner_throughput.append(metrics["throughput/train_samples_per_s"])
                    params_total = int(metrics["params/total"])
                rows += [{"side": side, "repeat": repeat, **row} for row in found]
                timed = [r["train_seconds"] for r in found[1:]]
                print(
                    f"repeat {repeat}, {side}: train {statistics.median(timed):.3f} s/epoch "
                    f"({args.samples / statistics.median(timed):,.0f} samples/s)",
                    flush=True,
                )
    results = pd.DataFrame(rows)
    if args.csv:
        results.to_csv(args.csv, index=False)
    print(f"\n{params_total:,} parameters; {time.perf_counter() - started:.0f} s in all\n")
    print(summary_table(results, args.samples))
    print(
        f"\nThe runner's own throughput/train_samples_per_s (every epoch, warm-up included): "
        f"{statistics.median(runner_throughput):,.0f} samples/s"
    )


if __name__ == "__main__":
    main()
