"""The paradigm registry: every training paradigm of the pipeline, in dvc.yaml's order.

Each paradigm is a plug-in, a package here whose ``__init__`` declares it (:class:`Paradigm`): its
stage, params section, prepared task, run, comparison section, default sweep metric and checks. The
params schema, the comparison, sweeps and the tests all read :func:`paradigms`; none of them names a
paradigm. Adding one (README, "Extending"): its package, its params.yaml section, its stage script,
its dvc.yaml stage, and its declaration in :data:`BUILT_IN`.

Besides the packages: ``plugin`` (what a declaration holds), ``fitted`` (a Lightning fit in a tracked run),
``target`` (what the target-task paradigms share) and ``repeats`` (a stage over several seeds).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from pipeline.errors import UserError
from pipeline.paradigms import (
    active_learning,
    compress,
    distill,
    federated,
    finetune,
    multitask,
    pretrain,
    scratch,
    transfer,
)
from pipeline.paradigms.plugin import Paradigm, Ref

__all__ = ["BUILT_IN", "Paradigm", "Ref", "paradigm", "paradigms", "registered"]

BUILT_IN: tuple[Paradigm, ...] = (
    pretrain.PARADIGM,
    transfer.PARADIGM,
    finetune.PARADIGM,
    scratch.PARADIGM,
    multitask.PARADIGM,
    federated.PARADIGM,
    active_learning.PARADIGM,
    distill.PARADIGM,
    compress.PARADIGM,
)
_added: list[Paradigm] = []


def paradigms() -> tuple[Paradigm, ...]:
    """Every registered paradigm, built-in ones first, in the order their stages run."""
    return BUILT_IN + tuple(_added)


def paradigm(stage: str) -> Paradigm:
    """The paradigm whose stage is ``stage``, or a :class:`UserError` listing those there are."""
    for entry in paradigms():
        if entry.stage == stage:
            return entry
    raise UserError(f"no paradigm has a stage '{stage}'; allowed: {', '.join(p.stage for p in paradigms())}")


@contextmanager
def registered(entry: Paradigm) -> Iterator[Paradigm]:
    """``entry`` registered for the block: a paradigm defined outside this package (a notebook, a test)."""
    if any(p.stage == entry.stage for p in paradigms()):
        raise UserError(f"a paradigm with stage '{entry.stage}' is registered already")
    _added.append(entry)
    try:
        yield entry
    finally:
        _added.remove(entry)
