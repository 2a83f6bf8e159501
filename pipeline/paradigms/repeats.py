"""Train a stage's variants with several seeds, so the comparison can report mean ± std.

With ``repeats: N`` a training stage runs whole with seeds ``seed + 1`` … ``seed + N - 1``
first and with ``seed`` last, so the models and plots it leaves are those of ``seed``, as
with ``repeats: 1``. Only training randomness varies (initialisation, shuffling, dropout,
sampling): prepare's splits and partitions come from ``seed`` alone. Every run is its own
MLflow run with its seed among its params. The stage's runs come back keyed ``<variant>`` (the run of
``seed``) and ``<variant>@seed<N>`` (the extra ones); ``metrics/<stage>/<variant>.json`` holds the mean
over all of them and lists their run ids, the run of ``seed`` first.
"""

from __future__ import annotations

from typing import Callable

from pipeline.config.schema import SharedParams

StageRuns = dict[str, dict]  # variant -> {"run_id": ..., <metric>: value}


def over_seeds(run_stage: Callable[[SharedParams], StageRuns], params: SharedParams) -> StageRuns:
    extra: StageRuns = {}
    for seed in range(params.seed + 1, params.seed + params.repeats):
        for variant, entry in run_stage(params.model_copy(update={"seed": seed})).items():
            extra[f"{variant}@seed{seed}"] = entry
    return run_stage(params) | extra
