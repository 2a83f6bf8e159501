"""The ``distill`` stage: a large teacher, a small student on hard labels alone, the same student distilled.

All three train and test on the ``full`` task. The teacher is the configured ``model`` trained here on
every training label: the other stages' models either saw half the data (pretrain's source task), other
classes (``new_classes``) or several heads (multitask), and a teacher of this stage's own task makes the
three runs a like-for-like comparison. The control (``student``) and the ``distilled`` student share the
architecture (``distill.student``), initial weights, labels and epoch budget; only the loss differs.

With ``distill.labelled_fraction`` < 1 the students see that share of the training labels (per class,
drawn from the run's seed); the distilled one also learns from the teacher's outputs on the rest, which is
where distillation helps most.

Saved: ``models/distill/{teacher,student,distilled}.pt``, classifier checkpoints (the teacher is what
``compress`` starts from); ``plots/distill/history.csv`` (per model and epoch) and ``models.csv`` (per model:
accuracy, size, latency).
"""

from __future__ import annotations

import copy
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from pipeline.config.schema import ModelConfig, SharedParams
from pipeline.data.prepared import TaskData, load_task
from pipeline.deployment.cost import NONZERO_METRIC, SIZE_METRIC, relative_cost
from pipeline.deployment.inference import LATENCY_P50
from pipeline.deployment.weights import count_weights
from pipeline.io import atomic_dir
from pipeline.models.classifier import Classifier, build_classifier
from pipeline.paradigms.distill import PARADIGM
from pipeline.paradigms.distill.loss import UNLABELLED
from pipeline.paradigms.distill.module import DistillationModule
from pipeline.paradigms.fitted import fit_tracked, train_classifier
from pipeline.paths import TEACHER_CHECKPOINT, StagePaths
from pipeline.seeding import rng_for, seed_everything
from pipeline.tracking.contract import Metrics, SavedModel
from pipeline.tracking.outputs import write_csv
from pipeline.training.lightning_module import OUTPUT
from pipeline.training.runner import make_loaders

PREFIX = "distill"  # the students' metrics against the teacher: distill/size_ratio, distill/agreement, ...
PLOTTED = ("test/acc", "params/total", SIZE_METRIC, NONZERO_METRIC, LATENCY_P50)  # plots/distill/models.csv
SCORE = "val/distilled_best_loss"  # the distilled student's best validation loss: what a sweep of the stage minimises


def run_distill(params: SharedParams, paths: StagePaths = StagePaths.of(PARADIGM.stage)) -> dict[str, dict]:
    """The teacher, the control student and the distilled student; the models folder appears once all are saved."""
    task = load_task(paths.prepared(PARADIGM.task))
    cfg, student_cfg = params.distill, params.distill.student.of(params.model)
    runs, trained = {}, {}
    with atomic_dir(paths.models) as out:
        seed_everything(params.seed)
        teacher = build_classifier(params.model, task.input_shape, task.num_classes)
        runs["teacher"], trained["teacher"] = train_classifier(
            params, PARADIGM.run_spec("teacher"), teacher, task, out / TEACHER_CHECKPOINT.name
        )
        teacher_answers = trained["teacher"].predictions[OUTPUT][1]

        def against_teacher(student: Classifier) -> Callable[[Metrics], Metrics]:
            return lambda metrics: (
                relative_cost(metrics, runs["teacher"], PREFIX)
                | {f"{PREFIX}/agreement": agreement(student, task.X["test"], teacher_answers)}
            )

        seed_everything(params.seed)
        student = build_classifier(student_cfg, task.input_shape, task.num_classes)
        twin = copy.deepcopy(student)  # the distilled student starts from the control's very weights
        _warn_if_larger(student, teacher, student_cfg)
        known = labelled_share(task.y["train"], cfg.labelled_fraction, params.seed)
        runs["student"], trained["student"] = train_classifier(
            params,
            PARADIGM.run_spec("student"),
            student,
            _only(task, known),
            SavedModel.classifier(out / "student.pt", student, student_cfg, task),
            derived=against_teacher(student),
        )
        runs["distilled"], trained["distilled"] = _distil(
            params, task, known, teacher, twin, student_cfg, out / "distilled.pt", against_teacher(twin)
        )
    history = [{"variant": variant, **row} for variant, done in trained.items() for row in done.history]
    write_csv(paths.plots / "history.csv", history)
    write_csv(paths.plots / "models.csv", [{"variant": v, **{k: e[k] for k in PLOTTED}} for v, e in runs.items()])
    return runs


def _distil(
    params: SharedParams,
    task: TaskData,
    known: np.ndarray,
    teacher: Classifier,
    student: Classifier,
    student_cfg: ModelConfig,
    saved_at: Path,
    derived: Callable[[Metrics], Metrics],
):
    """The student trained on the distillation loss: the teacher's outputs on every training example, the labels
    of the ``known`` ones."""
    cfg, trainer = params.distill, params.trainer_for(PARADIGM.stage)
    module = DistillationModule(student, task.num_classes, trainer, cfg.temperature, cfg.alpha)
    loaders = make_loaders(task.X, task.y, trainer, params.seed)
    labels = np.where(known, task.y["train"], UNLABELLED)
    soft = TensorDataset(torch.from_numpy(task.X["train"]), torch.from_numpy(labels), logits(teacher, task.X["train"]))
    train = loaders["train"]
    loaders["train"] = DataLoader(
        soft, train.batch_size, shuffle=True, generator=torch.Generator().manual_seed(params.seed),
        num_workers=train.num_workers,
    )  # fmt: skip
    return fit_tracked(
        params,
        PARADIGM.run_spec("distilled"),
        module,
        loaders,
        task,
        {OUTPUT: task.classes},
        SavedModel.classifier(saved_at, student, student_cfg, task),
        tags={"distill.temperature": str(cfg.temperature), "distill.alpha": str(cfg.alpha)},
        derived=lambda metrics: derived(metrics) | {SCORE: metrics["val/best_loss"]},
    )


def labelled_share(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A mask of the training examples whose labels the students see: ``fraction`` of each class, at least one."""
    known = np.zeros(len(y), dtype=bool)
    if fraction >= 1:
        return ~known
    rng = rng_for(seed, "distill/labelled")
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        known[rng.choice(members, max(1, round(fraction * len(members))), replace=False)] = True
    return known


def _only(task: TaskData, known: np.ndarray) -> TaskData:
    """``task`` with only the ``known`` training examples (the control student's data)."""
    if known.all():
        return task
    return replace(
        task,
        X=task.X | {"train": task.X["train"][known]},
        y=task.y | {"train": task.y["train"][known]},
        ids=task.ids | {"train": task.ids["train"][known]},
    )


@torch.no_grad()
def logits(model: torch.nn.Module, X: np.ndarray) -> torch.Tensor:
    """``model``'s outputs in eval mode, on the CPU (the teacher's, computed once: it does not change)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        return model(torch.from_numpy(X).to(device)).float().cpu()
    finally:
        model.train(was_training)


def agreement(model: torch.nn.Module, X: np.ndarray, answers: np.ndarray) -> float:
    """The share of examples on which ``model`` predicts what the teacher predicted (``answers``)."""
    return float((logits(model, X).argmax(dim=1).numpy() == answers).mean())


def _warn_if_larger(student: Classifier, teacher: Classifier, student_cfg: ModelConfig) -> None:
    sizes = [count_weights(m) for m in (student, teacher)]
    if sizes[0] >= sizes[1]:
        shape = student_cfg.hidden_sizes if student_cfg.backbone == "mlp" else student_cfg.channels
        print(
            f"warning: distill.student {shape} has {sizes[0]:,} weights, not fewer than the teacher's {sizes[1]:,}: "
            "a distilled student is usually the smaller model",
            file=sys.stderr,
        )
