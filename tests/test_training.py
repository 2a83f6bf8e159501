"""The Lightning training path's callbacks, on tiny plain modules on CPU."""

from __future__ import annotations

import time
from typing import Callable

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pipeline.config.schema import TrainerConfig
from pipeline.training.callbacks import BestWeights
from pipeline.training.runner import make_loaders


class TinyRegression(pl.LightningModule):
    """One linear layer whose validation logs only ``val/mse``."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/mse", nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(
    callback: pl.Callback, epochs: int = 3, module: Callable[[], pl.LightningModule] = TinyRegression, sanity=False
) -> pl.LightningModule:
    """Fit a new ``module()`` for ``epochs`` with ``callback`` on 32 random examples (``sanity``: with Lightning's
    one-batch sanity validation first); returns what trained."""
    torch.manual_seed(0)
    x = torch.rand(32, 2)
    data = DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=8)
    trained = module()
    pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=1 if sanity else 0,
    ).fit(trained, data, data)
    return trained


class ScriptedValidation(TinyRegression):
    """Logs ``val/mse`` from a script, one value per validation (the sanity check's first), and keeps a copy of the
    weights each validation saw: which epoch is best is known before training (``fit`` for ``len(script)`` epochs,
    one fewer after a sanity check)."""

    def __init__(self, script: list[float]):
        super().__init__()
        self.script, self.seen = list(script), []

    def validation_step(self, batch, batch_idx):
        self.log("val/mse", self.script[len(self.seen)])

    def on_validation_epoch_end(self):
        self.seen.append({key: value.detach().clone() for key, value in self.state_dict().items()})


@pytest.mark.parametrize(
    "script, best_epoch",
    [
        ([0.5, 0.25, 0.75, 0.375], 1),  # the lowest in the middle: neither the first nor the last epoch
        ([float("nan"), 0.875, 0.375, 0.625], 2),  # a NaN first epoch is replaced by the first real score
        ([0.375, 0.375, 0.75], 0),  # a tie keeps the earlier epoch
    ],
)
def test_best_weights_keep_the_epoch_with_the_lowest_monitored_metric(script, best_epoch):
    """The restored weights are those validation saw at the lowest score, copied (later epochs leave them be).
    The scripts' scores are binary fractions, which float32 holds exactly.

    Catches: keeping the worst epoch (``score > self.best_score``), a tie moving to the later epoch (``<=``), a NaN
    kept for good, a state that aliases the live weights (``copy=False``)."""
    best = BestWeights("val/mse")
    module = fit(best, len(script), lambda: ScriptedValidation(script))
    assert best.best_score == script[best_epoch]
    assert set(best.state) == {"layer.weight", "layer.bias"}
    assert all(t.device.type == "cpu" for t in best.state.values())
    for key, value in best.state.items():
        assert torch.equal(value, module.seen[best_epoch][key]), key
        assert not torch.equal(value, module.state_dict()[key]), f"{key}: the last epoch's weights, not the best's"


def test_best_weights_ignore_the_sanity_check():
    """Lightning's sanity check validates untrained weights before the first epoch: never a run's best.

    Catches: the sanity-check guard dropped (its 0.0 would be kept)."""
    best = BestWeights("val/mse")
    fit(best, 2, lambda: ScriptedValidation([0.0, 0.5, 0.25]), sanity=True)
    assert best.best_score == 0.25


def test_best_weights_fail_loudly_naming_what_validation_logged_when_their_metric_is_missing():
    with pytest.raises(RuntimeError, match=r"lowest `val/loss`, which validation did not log; it logged: `val/mse`"):
        fit(BestWeights("val/loss"), epochs=1)


class SilentValidation(TinyRegression):
    def validation_step(self, batch, batch_idx):
        pass


def test_best_weights_say_so_when_validation_logged_nothing():
    with pytest.raises(RuntimeError, match=r"which validation did not log; it logged: none$"):
        fit(BestWeights("val/loss"), epochs=1, module=SilentValidation)


@pytest.mark.parametrize("asked, expected", [(3, 3), ("all", None)])
def test_a_training_run_uses_the_thread_count_its_trainer_asks_for(tracking_dir, asked, expected):
    """Set as the stage's run opens (``trainer.num_threads``, a stage's own override first) and tagged on it."""
    import os

    from mlflow.tracking import MlflowClient

    from pipeline.tracking.runs import RunSpec, stage_run
    from tests.conftest import make_params

    expected = expected or os.cpu_count()  # "all": one per core
    params = make_params(trainer={"num_threads": 1}, scratch={"trainer": {"num_threads": asked}})
    with stage_run(params, RunSpec("scratch", "scratch", "scratch", ("trainer", "scratch"))) as run:
        assert torch.get_num_threads() == expected
    assert MlflowClient().get_run(run.info.run_id).data.tags["torch_threads"] == str(expected)


def test_round_metrics_are_written_in_batches_and_kept_when_the_run_fails(tracking_dir):
    """Per-round metrics reach MLflow with their own steps: the first round at once, later ones at the next flush
    (one write for many rounds), and on the way out of a failed run."""
    from mlflow.tracking import MlflowClient

    from pipeline.tracking.contract import tracked_run
    from pipeline.tracking.runs import RunSpec
    from tests.conftest import make_params

    params = make_params()
    spec = RunSpec("scratch", "scratch", "scratch", ("trainer", "scratch"))
    client = MlflowClient()
    with pytest.raises(RuntimeError, match="round 3 broke"):
        with tracked_run(params, spec) as run:
            run.log_step({"val/acc": 0.5, "round/seconds": 0.1}, 1)
            run.log_step({"val/acc": 0.6, "round/seconds": 0.1}, 2)
            written = client.get_metric_history(run.run_id, "val/acc")
            assert [m.step for m in written] == [1]  # round 2 waits for the next flush
            run.log_step({"val/acc": 0.7, "round/seconds": 0.1}, 3)
            raise RuntimeError("round 3 broke")
    history = client.get_metric_history(run.run_id, "val/acc")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.6), (3, 0.7)]
    assert client.get_run(run.run_id).info.status == "FAILED"


def test_a_lone_last_training_example_is_left_out_of_the_epoch_batch_norm_could_not_train_on():
    def sizes(n: int) -> list[int]:
        X = {s: np.zeros((n, 4), dtype=np.float32) for s in ("train", "val", "test")}
        y = {s: np.zeros(n, dtype=np.int64) for s in X}
        loaders = make_loaders(X, y, TrainerConfig(batch_size=16), seed=0)
        return [len(batch[1]) for batch in loaders["train"]], len(loaders["val"].dataset)

    assert sizes(33) == ([16, 16], 33)  # one example left: out of this epoch (another, reshuffled, the next)
    assert sizes(34) == ([16, 16, 2], 34)


class Seen(pl.Callback):
    """Records that a fit ran it: how many training epochs it saw."""

    def __init__(self):
        self.epochs = 0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epochs += 1


def three_blobs(seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Three noisy classes in 4-D: 44 training (the last 8 unlabelled, class -1), 30 validation, 30 test examples
    (with batches of 16, the last training batch holds 12)."""
    rng = np.random.default_rng(seed)
    X, y = {}, {}
    for split, n in (("train", 44), ("val", 30), ("test", 30)):
        y[split] = np.arange(n) % 3
        X[split] = (rng.normal(size=(n, 4)) + 1.5 * np.eye(3, 4)[y[split]]).astype(np.float32)
    y["train"][-8:] = -1
    return X, y


def partly_labelled_module(cfg: TrainerConfig):
    """A classifier of :func:`three_blobs` whose training loss skips the unlabelled examples (class -1), as a
    distilled student's does."""
    from pipeline.training.lightning_module import ClassificationModule

    class PartlyLabelled(ClassificationModule):
        def loss(self, batch) -> torch.Tensor:
            x, y = batch
            return nn.functional.cross_entropy(self(x), y, ignore_index=-1)

    torch.manual_seed(0)
    return PartlyLabelled(nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3)), 3, cfg)


def fit_blobs(cfg: TrainerConfig, label: str, data=None, extra: tuple[pl.Callback, ...] = ()):
    """:func:`fit_and_test` of :func:`partly_labelled_module` on ``data`` (default :func:`three_blobs`), in an MLflow
    run of the test's store."""
    import mlflow

    from pipeline.training.runner import fit_and_test

    X, y = data or three_blobs()
    with mlflow.start_run() as run:
        return fit_and_test(partly_labelled_module(cfg), make_loaders(X, y, cfg, seed=0), cfg, 0, run, label, extra)


def test_the_runner_restores_the_epoch_with_the_lowest_validation_loss_tests_it_and_reports_the_contract(
    tracking_dir, capsys
):
    """One fit through :func:`fit_and_test`, with a learning rate high enough that validation loss rises again before
    the last epoch (so the restored epoch is not simply the last): ``val/best_loss`` is the lowest ``val/loss`` of
    any epoch, the returned weights are that epoch's, the test scores are those weights', and the rest of the run
    contract is what the fit did (epochs, labels used, model state after the first step, activations measured as
    predicted, the callbacks a caller and a sweep add, a fresh optimizer).

    Catches: the best epoch not restored (the last epoch's weights tested), the best kept by the wrong rule,
    unlabelled examples counted or validation's left out, a caller's or a sweep's callbacks dropped, the activation
    prediction on another batch than the first full one."""
    from pipeline.memory.activations import ESTIMATED, MEASURED
    from pipeline.training.runner import FIT_CALLBACKS

    cfg = TrainerConfig(
        max_epochs=8, batch_size=16, optimizer="sgd", lr=1.5, momentum=0.9, accelerator="cpu", devices=1,
        early_stopping_patience=None,
    )  # fmt: skip
    X, y = three_blobs()
    extra, around = Seen(), Seen()
    token = FIT_CALLBACKS.set(lambda: [around])
    try:
        started = time.perf_counter()
        trained = fit_blobs(cfg, "runner", (X, y), (extra,))
        elapsed = time.perf_counter() - started
    finally:
        FIT_CALLBACKS.reset(token)

    losses = [row["val/loss"] for row in trained.history]
    assert [row["epoch"] for row in trained.history] == list(range(1, cfg.max_epochs + 1))
    best = trained.metrics["val/best_loss"]
    assert best == pytest.approx(min(losses), abs=1e-6) and losses[-1] > best + 1e-3  # the last epoch is not it
    with torch.no_grad():
        logits = {split: trained.module(torch.from_numpy(X[split])) for split in ("val", "test")}
    assert nn.functional.cross_entropy(logits["val"], torch.from_numpy(y["val"])).item() == pytest.approx(
        best, abs=1e-5
    )
    predicted = logits["test"].argmax(dim=1).numpy()
    assert trained.metrics["test/acc"] == pytest.approx(float((predicted == y["test"]).mean()), abs=1e-6)
    true, answers = next(iter(trained.predictions.values()))
    assert np.array_equal(true, y["test"]) and np.array_equal(answers, predicted)
    assert trained.logged == frozenset(k for k in trained.metrics if k.startswith("test/"))
    assert {"test/acc", "test/f1_macro", "test/loss"} <= trained.logged

    assert trained.metrics["train/epochs"] == cfg.max_epochs
    assert trained.labels_used == 36 + 30  # 44 training examples, 8 of them unlabelled; all 30 validation ones
    assert extra.epochs == around.epochs == cfg.max_epochs
    weights = sum(p.numel() for p in trained.module.parameters()) * 4
    assert trained.state_bytes == 3 * weights  # weights, gradients and SGD's momentum, float32
    assert trained.metrics[MEASURED] == trained.metrics[ESTIMATED] > 0  # the first batch: 16 examples, not 12
    assert trained.peak_bytes >= trained.state_bytes
    assert 0 < trained.fit_seconds < elapsed and trained.samples_per_s > 0
    assert isinstance(trained.optimizer, torch.optim.SGD) and not trained.optimizer.state  # fresh: never stepped
    assert trained.device.type == "cpu" and trained.precision == "32-true"
    assert "[runner] epoch 1/8  " in capsys.readouterr().err  # the progress line names the run


def test_with_gradient_accumulation_the_model_state_is_measured_after_the_first_optimizer_step(tracking_dir):
    """Two batches of 22 make the fit's one step: after the first batch there are gradients but no momentum yet.

    Catches: the state measured after the first batch rather than the first step (two buffers, not three), or
    only from the second step on (never, in a fit of one step)."""
    cfg = TrainerConfig(
        max_epochs=1, batch_size=22, optimizer="sgd", momentum=0.9, accumulate_grad_batches=2, accelerator="cpu",
        devices=1, early_stopping_patience=None,
    )  # fmt: skip
    trained = fit_blobs(cfg, "accumulated")
    assert trained.state_bytes == 3 * 4 * sum(p.numel() for p in trained.module.parameters())


def test_a_distributed_process_trains_on_its_own_share_of_every_epoch():
    """The training loader of rank 0 of two: the examples :class:`DistributedSampler` gives it for the seed, in
    batches of the loader's size, with its worker count; rank 1's share is the rest.

    Catches: the share not shuffled or shuffled by another seed, another rank's or the whole set, the batch size or
    the workers lost (``_shared_out`` runs only in a multi-process fit, which tests/test_distributed.py runs)."""
    from torch.utils.data import DistributedSampler

    from pipeline.training.runner import _shared_out

    data = TensorDataset(torch.arange(20.0).reshape(20, 1), torch.zeros(20, dtype=torch.long))
    train = DataLoader(data, batch_size=4, shuffle=True, num_workers=1)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_checkpointing=False)
    assert (trainer.world_size, trainer.global_rank) == (2, 0)
    shared = _shared_out(train, trainer, seed=7)
    assert shared.batch_size == 4 and shared.num_workers == 1 and shared.dataset is data
    shared.num_workers = 0  # read it in this process
    seen = [int(x) for batch in shared for x in batch[0].flatten()]
    mine = list(DistributedSampler(data, num_replicas=2, rank=0, shuffle=True, seed=7))
    theirs = list(DistributedSampler(data, num_replicas=2, rank=1, shuffle=True, seed=7))
    assert seen == mine and sorted(mine + theirs) == list(range(20))
    assert mine != list(DistributedSampler(data, num_replicas=2, rank=0, shuffle=True, seed=0))
    assert mine != list(range(0, 20, 2))  # shuffled


def test_early_stopping_ends_the_fit_once_validation_loss_stops_falling(tracking_dir):
    """Patience 1: the fit ends with the first epoch whose validation loss is no lower than the best before it.

    Catches: early stopping not added, watching another metric, or the patience not the trainer's."""
    cfg = TrainerConfig(
        max_epochs=30, batch_size=16, optimizer="sgd", lr=1.5, momentum=0.9, accelerator="cpu", devices=1,
        early_stopping_patience=1,
    )  # fmt: skip
    trained = fit_blobs(cfg, "early")
    losses = [row["val/loss"] for row in trained.history]
    first_worse = next(e for e in range(1, len(losses)) if losses[e] >= min(losses[:e]))
    assert trained.metrics["train/epochs"] == len(losses) == first_worse + 1 < cfg.max_epochs  # patience 1


def test_a_fit_without_a_validation_epoch_refuses_to_report(tracking_dir):
    """No validation ran (an empty validation split): no best epoch to restore, so no result.

    Catches: the check dropped (a model never validated tested and reported)."""
    cfg = TrainerConfig(max_epochs=1, batch_size=16, accelerator="cpu", devices=1, early_stopping_patience=None)
    X, y = three_blobs()
    X["val"], y["val"] = X["val"][:0], y["val"][:0]
    with pytest.raises(RuntimeError, match="no best epoch to restore"):
        fit_blobs(cfg, "no-val", (X, y))


def test_labels_used_count_the_labelled_examples_only():
    """A negative class marks an example only a teacher labelled; float targets (soft labels) count whole.

    Catches: ``>=`` as ``>`` (class 0 uncounted), a multi-task row counted when one of its tasks is unlabelled."""
    from torch.utils.data import TensorDataset

    from pipeline.training.runner import labelled

    x = torch.zeros(5, 2)
    assert labelled(TensorDataset(x, torch.tensor([0, 1, -1, 2, -1]))) == 3
    assert labelled(TensorDataset(x, torch.tensor([[0, 1], [1, -1], [2, 0], [-1, -1], [0, 0]]))) == 3
    assert labelled(TensorDataset(x, torch.full((5,), -1.0))) == 5  # soft targets: every example
    assert labelled(TensorDataset(x)) == 5


def test_epoch_history_keeps_a_row_per_epoch_and_prints_one_line_each(capsys):
    """Catches: the label or the epoch count left out of the line, the epoch shown among the metrics, rows without
    their epoch or metric, or rounded otherwise than to six decimals."""
    from pipeline.training.callbacks import EpochHistory

    history = EpochHistory("tiny", keys=("val/mse", "train/absent"))
    fit(history)
    assert [row["epoch"] for row in history.rows] == [1, 2, 3]
    assert all(set(row) == {"epoch", "val/mse"} and row["val/mse"] > 0 for row in history.rows)
    assert all(row["val/mse"] == round(row["val/mse"], 6) != round(row["val/mse"], 5) for row in history.rows)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[tiny] ")]
    assert lines == [f"[tiny] epoch {row['epoch']}/3  val/mse {row['val/mse']:.4f}" for row in history.rows]
    assert EpochHistory().label == ""


def test_throughput_counts_every_training_example_of_every_epoch():
    """32 examples, 3 epochs: 96 samples over the training time alone.

    Catches: a batch counted as one sample, the count reset each batch, the rate not samples over seconds, the
    clock read the wrong way round."""
    from pipeline.training.callbacks import Throughput

    throughput = Throughput()
    started = time.perf_counter()
    fit(throughput)
    elapsed = time.perf_counter() - started
    assert throughput.samples == 96 and throughput.processes == 1 and 0 < throughput.seconds < elapsed
    assert throughput.samples_per_s == pytest.approx(96 / throughput.seconds)
    assert Throughput().samples_per_s == 0.0  # nothing timed: no rate, not a division by zero


def test_training_batches_are_shuffled_by_the_seed_and_evaluation_batches_keep_their_order():
    """Catches: training not shuffled, or shuffled by the global generator (not reproducible from the seed);
    validation or test shuffled; the worker count lost; a lone training example of a one-example split dropped."""
    X = {s: np.arange(40, dtype=np.float32).reshape(40, 1) for s in ("train", "val", "test")}
    y = {s: np.zeros(40, dtype=np.int64) for s in X}

    def order(loader) -> list[int]:
        return [int(v) for batch in loader for v in batch[0].flatten()]

    cfg = TrainerConfig(batch_size=8, num_workers=0)
    first, again, other = (make_loaders(X, y, cfg, seed) for seed in (3, 3, 4))
    torch.manual_seed(123)  # the global generator does not decide the order
    assert order(first["train"]) == order(again["train"]) != order(other["train"])
    assert sorted(order(first["train"])) == list(range(40)) and order(first["train"]) != list(range(40))
    assert order(first["val"]) == order(first["test"]) == list(range(40))
    assert make_loaders(X, y, TrainerConfig(batch_size=8, num_workers=2), 0)["train"].num_workers == 2
    one = {s: X[s][:1] for s in X}, {s: y[s][:1] for s in y}
    assert order(make_loaders(*one, cfg, 0)["train"]) == [0]  # one example: nothing to leave out
