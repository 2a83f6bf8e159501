"""What every stage's MLflow run carries besides the run contract: MLflow's system metrics, the experiment's kind."""

from __future__ import annotations

import time

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from pipeline.tracking.runs import EXPERIMENT_KIND, RunSpec, stage_run
from tests.conftest import make_params

TRAINING_RUN = RunSpec("pretrain", "pretrain", "base", ("seed", "model", "trainer", "pretrain"))


@pytest.mark.parametrize("monitored", [True, False], ids=["on", "off"])
def test_system_metrics_sample_a_training_run_when_on(tracking_dir, monitored):
    params = make_params(tracking={"system_metrics": monitored})
    with stage_run(params, TRAINING_RUN) as run:
        time.sleep(2.5)  # sampled once a second
    logged = MlflowClient().get_run(run.info.run_id).data.metrics
    assert ("system/cpu_utilization_percentage" in logged) is monitored
    assert ("system/system_memory_usage_megabytes" in logged) is monitored


def test_the_experiment_is_marked_as_model_training_also_when_it_existed_before(tracking_dir):
    made_earlier = mlflow.create_experiment("paradigm-lab")  # as a version before the mark left it
    with stage_run(make_params(), TRAINING_RUN) as run:
        pass
    assert run.info.experiment_id == made_earlier
    tags = MlflowClient().get_experiment(made_earlier).tags
    assert {key: tags.get(key) for key in EXPERIMENT_KIND} == EXPERIMENT_KIND
