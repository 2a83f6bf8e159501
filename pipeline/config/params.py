"""The whole of params.yaml: the shared sections and one section per registered paradigm.

No paradigm is named here: each brings its section and its checks across sections
(:mod:`pipeline.paradigms`), and the model below is put together from them.
"""

from __future__ import annotations

import functools

from pydantic import Field, create_model

from pipeline.config.schema import CompareConfig, SharedParams, StageSweep
from pipeline.paradigms import Paradigm, paradigms


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
