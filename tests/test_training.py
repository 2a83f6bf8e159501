"""The Lightning training path's callbacks, on tiny plain modules on CPU."""

from __future__ import annotations

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


def fit(callback: pl.Callback, epochs: int = 3) -> None:
    torch.manual_seed(0)
    x = torch.rand(32, 2)
    data = DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=8)
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(TinyRegression(), data, data)


def test_best_weights_keep_the_epoch_with_the_lowest_monitored_metric():
    best = BestWeights("val/mse")
    fit(best)
    assert best.best_score is not None and set(best.state) == {"layer.weight", "layer.bias"}
    assert all(t.device.type == "cpu" for t in best.state.values())


def test_best_weights_fail_loudly_naming_what_validation_logged_when_their_metric_is_missing():
    with pytest.raises(RuntimeError, match=r"lowest `val/loss`, which validation did not log; it logged: `val/mse`"):
        fit(BestWeights("val/loss"), epochs=1)


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
