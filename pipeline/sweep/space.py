"""The search space of ``sweep.<stage>``: dotted params keys, checked before any trial runs.

A key must name a param the stage reads (a key under one of its params.yaml sections) that
exists in the schema; every end of a range and every choice must give valid params. The
error names the key, the value and what is allowed.
"""

from __future__ import annotations

import copy
from typing import Any

import optuna

from pipeline.config.edit import set_dotted
from pipeline.config.loading import section_model
from pipeline.config.schema import SearchDimension, StageSweep
from pipeline.errors import ConfigError
from pipeline.params import Params, params_model, parse_params


def stage_sweep(params: Params, stage: str) -> StageSweep:
    if stage not in params.sweep:
        raise ConfigError(f"params.yaml: no sweep.{stage} section; add one with a 'space' of dotted keys to search")
    return params.sweep[stage]


def check_space(params: Params, stage: str, sweep: StageSweep, sections: tuple[str, ...]) -> None:
    """Every key exists and the stage reads it; every range end and choice gives valid params."""
    for key in [*sweep.space, *sweep.fixed]:
        _check_key(key, stage, sections)
    if sweep.fixed:
        with_values(params, sweep.fixed)
    for key, dim in sweep.space.items():
        for value in _corners(dim):
            with_values(params, {**sweep.fixed, key: value})


def suggest(trial: optuna.Trial, space: dict[str, SearchDimension]) -> dict[str, Any]:
    values = {}
    for key, dim in space.items():
        if dim.type == "categorical":
            values[key] = trial.suggest_categorical(key, dim.choices)
        elif dim.type == "int":
            values[key] = trial.suggest_int(key, int(dim.low), int(dim.high), step=int(dim.step or 1), log=dim.log)
        else:
            values[key] = trial.suggest_float(key, dim.low, dim.high, step=dim.step, log=dim.log)
    return values


def with_values(params: Params, values: dict[str, Any]) -> Params:
    """``params`` with each dotted key set, validated again as a whole."""
    tree = copy.deepcopy(params.model_dump(mode="json"))
    for key, value in values.items():
        set_dotted(tree, key, value)
    try:
        return parse_params(tree, "sweep")
    except ConfigError as err:
        shown = ", ".join(f"{k} = {v!r}" for k, v in values.items())
        raise ConfigError(f"sweep values {shown} give invalid params:\n{err}") from None


def _corners(dim: SearchDimension) -> list[Any]:
    if dim.type == "categorical":
        return list(dim.choices or [])
    kind = int if dim.type == "int" else float
    return [kind(dim.low), kind(dim.high)]


def _check_key(key: str, stage: str, sections: tuple[str, ...]) -> None:
    section = key.split(".")[0]
    if section not in sections:
        raise ConfigError(
            f"sweep.{stage}: key '{key}' is not a param the {stage} stage reads; allowed: keys under "
            f"{', '.join(sections)}"
        )
    model: Any = params_model()
    walked = []
    for part in key.split("."):
        fields = model.model_fields if model is not None else None  # None: past a plain value
        if fields is None or part not in fields:
            where = ".".join(walked) or "the top level"
            allowed = ", ".join(fields) if fields else "no keys (it is a value)"
            raise ConfigError(
                f"sweep.{stage}: unknown key '{key}': '{part}' is not in {where}; allowed there: {allowed}"
            )
        walked.append(part)
        model = section_model(fields[part].annotation)
