"""What every stage's MLflow run carries besides the run contract: MLflow's system metrics, the experiment's kind."""

from __future__ import annotations

import threading
import time

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from pipeline.tracking.runs import EXPERIMENT_KIND, RunSpec, stage_run
from tests.conftest import make_params

TRAINING_RUN = RunSpec("pretrain", "pretrain", "base", ("seed", "model", "trainer", "pretrain"))


def monitors() -> set[threading.Thread]:
    """MLflow's system-metrics monitors running in this process (one thread per monitored run)."""
    return {thread for thread in threading.enumerate() if thread.name == "SystemMetricsMonitor"}


def first_system_metrics(run_id: str, deadline_s: float = 120) -> dict[str, float]:
    """The run's metrics once the monitor's first sample is in the store: waits for that event, not for a time."""
    deadline = time.monotonic() + deadline_s  # a hang, not a slow machine, runs past it
    while "system/cpu_utilization_percentage" not in (logged := MlflowClient().get_run(run_id).data.metrics):
        assert time.monotonic() < deadline, f"no system metrics logged in {deadline_s} s"
        time.sleep(0.05)
    return logged


@pytest.mark.parametrize("monitored", [True, False], ids=["on", "off"])
def test_system_metrics_sample_a_training_run_when_on(tracking_dir, monitored):
    """On, the training run starts MLflow's monitor and stays open until its first sample is logged (how long that
    takes on a busy machine does not matter); off, it starts none and logs no system metric.

    Catches: stage_run not asking MLflow for system metrics on a training run (or asking with them off)."""
    params = make_params(tracking={"system_metrics": monitored})
    before = monitors()
    with stage_run(params, TRAINING_RUN) as run:
        assert len(monitors() - before) == int(monitored)
        if monitored:
            first_system_metrics(run.info.run_id)
    logged = MlflowClient().get_run(run.info.run_id).data.metrics
    assert ("system/cpu_utilization_percentage" in logged) is monitored
    assert ("system/system_memory_usage_megabytes" in logged) is monitored
    assert not any(key.startswith("system/") for key in logged) or monitored


def test_the_experiment_is_marked_as_model_training_also_when_it_existed_before(tracking_dir):
    made_earlier = mlflow.create_experiment("paradigm-lab")  # as a version before the mark left it
    with stage_run(make_params(), TRAINING_RUN) as run:
        pass
    assert run.info.experiment_id == made_earlier
    tags = MlflowClient().get_experiment(made_earlier).tags
    assert {key: tags.get(key) for key in EXPERIMENT_KIND} == EXPERIMENT_KIND
