"""The Lightning Trainer built from the ``trainer`` params, logging into the stage's MLflow run."""

from __future__ import annotations

import logging
import warnings

import lightning.pytorch as pl
import mlflow
from lightning.pytorch.loggers import MLFlowLogger

from pipeline.config.schema import TrainerConfig

# Small in-memory datasets need no loader workers; Lightning's hint about it is noise here,
# as are an internal deprecation notice and an advertisement printed on every fit.
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
# In a distributed fit every process validates and tests on the whole split (see runner), so the
# values logged without syncing are already the same everywhere.
warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting.*")
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda record: "Tip:" not in record.getMessage())


class RunLogger(MLFlowLogger):
    """Lightning's MLflow logger, writing into a run the stage opened; the stage closes it."""

    def __init__(self, run: mlflow.ActiveRun):
        super().__init__(tracking_uri=mlflow.get_tracking_uri(), run_id=run.info.run_id)

    def finalize(self, status: str = "success") -> None:
        """Leave the run open: the stage logs more after fit and sets the final status."""


def build_trainer(cfg: TrainerConfig, run: mlflow.ActiveRun, callbacks: list[pl.Callback], root_dir: str) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=cfg.max_epochs,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        num_nodes=cfg.num_nodes,
        use_distributed_sampler=False,  # the runner shards training itself and keeps validation and test whole
        precision=cfg.precision,
        accumulate_grad_batches=cfg.accumulate_grad_batches,
        deterministic=True,
        logger=RunLogger(run),
        callbacks=callbacks,
        enable_checkpointing=False,  # the best epoch's weights stay in memory (BestWeights), none go to disk
        default_root_dir=root_dir,
        enable_progress_bar=False,  # EpochHistory prints one line per epoch instead
        enable_model_summary=False,  # parameter counts are logged to MLflow (params/total, params/trainable)
        log_every_n_steps=1,
    )
