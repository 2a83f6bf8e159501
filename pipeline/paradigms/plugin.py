"""What a paradigm plug-in declares about itself, in one place next to its code.

Every consumer reads these declarations instead of knowing the paradigms by name: the params
schema takes each one's section and its checks, the comparison its part of the report, sweeps
its run and default metric, the tests the stage list. A declaration stays light (no torch):
``run`` and ``compare`` are named as ``module:function`` and imported only when called, so
loading params.yaml imports no paradigm's training code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional

if TYPE_CHECKING:
    from pipeline.config.schema import StageSection
    from pipeline.tracking.runs import RunSpec

Task = Literal["source", "target", "full"]  # prepare's tasks: data/prepared/<task>.npz
Baseline = Literal["chance", "majority", "logistic"]  # pipeline.data.baselines
BASELINES: tuple[Baseline, ...] = ("chance", "majority", "logistic")
# the shared params every training stage reads
TRAINING_SECTIONS = ("seed", "repeats", "model", "trainer", "deployment")


@dataclass(frozen=True)
class Ref:
    """``module:attribute``, imported when first loaded (as a packaging entry point names a function)."""

    target: str

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    def load(self) -> Any:
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Paradigm:
    """One paradigm of the pipeline.

    Args:
        stage: its DVC stage, params section, ``metrics/<stage>/``, ``models/<stage>`` and ``plots/<stage>``.
        config: its params section (a :class:`~pipeline.config.schema.StageSection`).
        task: the prepared task it trains and tests on.
        run: ``run(params, paths) -> {variant: {"run_id": ..., <metric>: value}}``, what its stage runs.
        compare: ``compare(results) -> Section``, its part of the comparison report; None for none.
        sweep_metric: what a sweep of the stage minimises unless ``sweep.<stage>.metric`` says otherwise.
        checks: ``checks(params)`` raises ``ValueError`` when its section does not fit the others (e.g. the backbone).
        judged_against: the task's trivial baselines (:mod:`pipeline.data.baselines`) its best test accuracy must
            clear for its results to count (:mod:`pipeline.paradigms.sanity`).
    """

    stage: str
    config: type[StageSection]
    task: Task
    run: Ref
    compare: Optional[Ref] = None
    sweep_metric: str = "val/best_loss"
    checks: Optional[Callable[[Any], None]] = None
    judged_against: tuple[Baseline, ...] = BASELINES

    @classmethod
    def in_package(
        cls,
        package: str,
        config: type[StageSection],
        task: Task,
        compare: Optional[str] = None,
        sweep_metric: str = "val/best_loss",
        checks: Optional[Callable[[Any], None]] = None,
        judged_against: tuple[Baseline, ...] = BASELINES,
    ) -> Paradigm:
        """A paradigm laid out as the built-in ones: the package ``pipeline/paradigms/<stage>/`` (``package`` is
        its ``__name__``) whose ``run`` module has ``run_<stage>``, and whose ``compare`` module, if any, the
        function named ``compare``."""
        stage = package.rpartition(".")[2]
        section = Ref(f"{package}.compare:{compare}") if compare else None
        return cls(
            stage, config, task, Ref(f"{package}.run:run_{stage}"), section, sweep_metric, checks, judged_against
        )

    def run_spec(self, variant: str, paradigm: Optional[str] = None) -> RunSpec:
        """A run of its stage; ``paradigm`` tags a control trained alongside (e.g. ``single_task``)."""
        from pipeline.tracking.runs import RunSpec  # here, not above: a declaration stays light (no MLflow)

        return RunSpec(self.stage, paradigm or self.stage, variant, self.sections)

    @property
    def sections(self) -> tuple[str, ...]:
        """The params.yaml sections its results depend on, as its dvc.yaml stage lists them."""
        return (*TRAINING_SECTIONS, self.stage)
