"""Data-parallel training on two CPU processes (Lightning's DDP over gloo), as on several GPUs or nodes:
the stage script runs in each process, and only global rank 0 leaves outputs and MLflow runs behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from pipeline.data.prepared import load_task, read_judgement
from pipeline.io import atomic_dir, write_text
from pipeline.models.checkpoint import load_classifier
from pipeline.params import parse_params
from pipeline.ranks import is_global_zero
from pipeline.tracking.store import resolve_tracking_uri
from tests.conftest import TINY, deep_merge, make_params

RANK_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "NODE_RANK",
    "WORLD_SIZE",
    "SLURM_NTASKS",
    "SLURM_PROCID",
    "MASTER_ADDR",
    "MASTER_PORT",
)


def test_stages_train_on_two_processes_and_rank_zero_alone_tracks_and_writes(tmp_path):
    _run_stages(tmp_path, {"accelerator": "cpu", "devices": 2, "strategy": "ddp", "max_epochs": 2})


def _run_stages(tmp_path, trainer: dict) -> None:
    """prepare, pretrain and finetune (full, lora) as DVC runs them, each fit on two processes; each run learns:
    its test accuracy is far above chance (lr 0.01: about 0.89 pretrain, 0.6 finetune on CPU; 0.1 is chance).

    Catches: a distributed fit whose steps change no weight (e.g. the optimizer's lr made 0)."""
    params = deep_merge(TINY, {"trainer": {"lr": 0.01} | trainer, "finetune": {"strategies": ["full", "lora"]}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {k: v for k, v in os.environ.items() if k not in RANK_VARIABLES}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for stage in ("prepare", "pretrain", "finetune"):
        result = subprocess.run(
            [sys.executable, "-m", f"stages.{stage}"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        if stage == "pretrain":
            epochs = [line for line in result.stderr.splitlines() if "epoch 1/2" in line]
            assert len(epochs) == 1, result.stderr[-3000:]  # one progress line, not one per process

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    every = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(run.data.tags["stage"] for run in every) == [
        "finetune",
        "finetune",
        "prepare",
        "pretrain",
    ]  # none from rank 1
    runs = [run for run in every if run.data.tags["stage"] != "prepare"]
    for run in runs:
        assert run.info.status == "FINISHED"
        task = "source" if run.data.tags["stage"] == "pretrain" else "target"
        chance = read_judgement(tmp_path / "data" / "prepared" / f"{task}.npz")[0]["chance"]
        assert run.data.params["trainer.devices"] == "2" and run.data.metrics["test/acc"] > 3 * chance, task
        assert run.data.metrics["throughput/train_samples_per_s"] > 0
    listed = [json.loads(path.read_text()) for path in (tmp_path / "metrics" / "finetune").rglob("*.json")]
    assert {run_id for written in listed for run_id in written["run_ids"]} == {
        r.info.run_id for r in runs if r.data.tags["stage"] == "finetune"
    }
    # the test metrics are those of the saved weights on the whole test split, as one device computes them
    model, _ = load_classifier(tmp_path / "models" / "pretrain" / "base.pt", parse_params(params).model)
    task = load_task(tmp_path / "data" / "prepared" / "source.npz")
    with torch.no_grad():
        predicted = model.eval()(torch.from_numpy(task.X["test"])).argmax(dim=1).numpy()
    pretrain = next(run for run in runs if run.data.tags["stage"] == "pretrain")
    assert pretrain.data.metrics["test/acc"] == pytest.approx(float((predicted == task.y["test"]).mean()), abs=1e-6)
    leftovers = {p.name for p in tmp_path.iterdir()} - {
        "params.yaml",
        "mlflow.db",
        "mlartifacts",
        "data",
        "models",
        "metrics",
        "plots",
    }
    assert not leftovers


def test_a_later_process_writes_nothing_and_tracks_into_a_throwaway_store(tmp_path, monkeypatch):
    for name in RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    tracking = make_params().tracking
    assert is_global_zero() and resolve_tracking_uri(tracking) == f"sqlite:///{tmp_path / 'mlflow.db'}"

    monkeypatch.setenv("NODE_RANK", "1")  # the first process of a second node
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert not is_global_zero()
    write_text(tmp_path / "metrics.json", "{}")
    with atomic_dir(tmp_path / "model") as folder:
        (folder / "weights.pt").write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    scratch = resolve_tracking_uri(tracking)
    assert scratch.startswith("sqlite:///") and str(tmp_path) not in scratch

    monkeypatch.setenv("RANK", "0")  # torchrun's global rank wins
    assert is_global_zero()


def test_gradual_unfreezing_refuses_a_distributed_fit(monkeypatch):
    """DDP syncs only the gradients of weights that train from the start: thawing later would let processes drift."""
    import lightning.pytorch as pl
    from torch import nn

    from pipeline.errors import ConfigError
    from pipeline.training.unfreezing import GradualUnfreezing

    for name in RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_checkpointing=False)
    assert trainer.world_size == 2
    layers = [nn.Linear(2, 2), nn.Linear(2, 2)]
    with pytest.raises(
        ConfigError, match="finetune.unfreeze_every = 3: gradual unfreezing needs one device, but this fit runs 2"
    ):
        GradualUnfreezing(layers, every_n_epochs=3, lr=0.1).setup(trainer, pl.LightningModule(), "fit")


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_stages_train_on_two_gpus(tmp_path):
    """The same stages with NCCL on two GPUs, with the default devices: auto and strategy: auto."""
    _run_stages(tmp_path, {"devices": 2, "max_epochs": 2})
