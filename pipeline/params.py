"""The whole of params.yaml: the shared sections and one section per registered paradigm; read and checked here.

No paradigm is named here: each brings its section and its checks across sections (:mod:`pipeline.paradigms`),
and the model below is put together from them. It sits above the paradigms for that reason: a paradigm's own
code sees the file through :class:`~pipeline.config.schema.SharedParams` (the object it gets is this model, with
its section on it), and the layers below never import the registry.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from pydantic import Field, create_model

from pipeline.config.loading import read_yaml, validated
from pipeline.config.schema import CompareConfig, SharedParams, StageSweep
from pipeline.errors import ConfigError
from pipeline.paradigms import Paradigm, paradigms

DEFAULT_PARAMS_FILE = Path("params.yaml")


def params_model() -> type[SharedParams]:
    """The schema of params.yaml for the paradigms registered now."""
    return _model_for(paradigms())


@functools.cache
def _model_for(entries: tuple[Paradigm, ...]) -> type[SharedParams]:
    sections = {p.stage: (p.config, Field(default_factory=p.config)) for p in entries}
    model = create_model(
        "Params",
        __base__=SharedParams,
        __doc__="params.yaml: the shared sections, then each paradigm's, then compare and sweep.",
        **sections,
        compare=(CompareConfig, Field(default_factory=CompareConfig)),
        # per stage; run with python -m pipeline.sweep <stage>
        sweep=(dict[str, StageSweep], Field(default_factory=dict)),
    )
    model.cross_checks = tuple(p.checks for p in entries if p.checks is not None)
    return model


Params = params_model()  # the built-in paradigms' schema, for type hints and isinstance


def load_params(path: str | Path = DEFAULT_PARAMS_FILE) -> Params:
    """Read and validate a params file; raise :class:`ConfigError` naming the key on any problem.

    An empty file is refused here (a profile may be empty, a run's params may not): it would run every stage on the
    defaults without a word, which is rarely what an emptied or truncated file meant."""
    raw = read_yaml(path)
    if raw == {}:
        raise ConfigError(
            f"{path}: empty; restore it with `git checkout {path}`, or write in it the sections to change "
            "(the rest keep their defaults)"
        )
    return parse_params(raw, source=str(path))


def parse_params(raw: Any, source: str = "params") -> Params:
    """Validate a params mapping (as read from YAML) against the registered paradigms' schema."""
    return validated(raw, params_model(), source)
