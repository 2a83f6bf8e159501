"""Where each stage reads and writes: defined here once, by the stage's name, and checked against dvc.yaml.

A stage writes its models under ``models/<stage>``, its plot data under ``plots/<stage>`` and its headline numbers
for DVC, with the MLflow runs behind them, under ``metrics/<stage>/`` (one file per variant; prepare's one file is
``metrics/prepare.json``); it reads prepare's files in ``data/prepared``, pretrain's checkpoint and distill's teacher.
Nothing else lives here, so no unrelated change invalidates the stages that read these constants.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

PREPARED_DIR = Path("data/prepared")
MODELS_DIR = Path("models")
PLOTS_DIR = Path("plots")
METRICS_DIR = Path("metrics")
REPORTS_DIR = Path("reports")
BASE_CHECKPOINT = MODELS_DIR / "pretrain" / "base.pt"  # pretrain's output: what transfer and fine-tuning start from
TEACHER_CHECKPOINT = MODELS_DIR / "distill" / "teacher.pt"  # distill's teacher: what compress starts from
MODEL_FILE = "model.pt"  # the one model of a stage that trains one
PREPARE_METRICS = METRICS_DIR / "prepare.json"  # prepare's few numbers for DVC and its run


def metrics_dir_of(stage: str, metrics_dir: Path = METRICS_DIR) -> Path:
    """``metrics/<stage>``: one file per variant (``<variant>.json``; a variant's ``/`` makes a sub-folder), each a
    row of ``dvc metrics show``."""
    return Path(metrics_dir) / stage


@dataclass(frozen=True)
class StagePaths:
    """What a training stage reads (prepared data, the base checkpoint, the teacher) and where it writes (models,
    plot data)."""

    data: Path
    base: Path
    models: Path
    plots: Path
    teacher: Path

    @classmethod
    def of(cls, stage: str, root: str | Path = ".") -> StagePaths:
        """The paths dvc.yaml gives ``stage``, under ``root`` (the project, or a test's folder)."""
        root = Path(root)
        return cls(
            root / PREPARED_DIR,
            root / BASE_CHECKPOINT,
            root / MODELS_DIR / stage,
            root / PLOTS_DIR / stage,
            root / TEACHER_CHECKPOINT,
        )

    def writing_to(self, folder: str | Path) -> StagePaths:
        """The same inputs, with models and plot data written under ``folder`` (a sweep's trial, a test)."""
        return replace(self, models=Path(folder) / "models", plots=Path(folder) / "plots")

    def prepared(self, name: str) -> Path:
        """A file prepare wrote: ``source``, ``target``, ``full``, ``federated`` or ``active_learning``."""
        return self.data / f"{name}.npz"
