"""The ``distill`` params section: the student's shape, the distillation loss, and the labels the students see."""

from __future__ import annotations

from typing import Optional

from pydantic import Field, field_validator

from pipeline.config.schema import ModelConfig, Section, StageSection


class StudentShape(Section):
    """The student: the teacher's ``model`` section with these keys replaced (same backbone, smaller)."""

    hidden_sizes: Optional[list[int]] = Field([32], min_length=1)  # mlp
    channels: Optional[list[int]] = Field([8, 16], min_length=1)  # cnn, cnn1d, resnet
    blocks_per_stage: Optional[int] = Field(None, ge=1)  # resnet

    @field_validator("hidden_sizes", "channels")
    @classmethod
    def _positive(cls, sizes: Optional[list[int]]) -> Optional[list[int]]:
        if sizes is not None and any(s < 1 for s in sizes):
            raise ValueError("every size must be a positive integer")
        return sizes

    def of(self, teacher: ModelConfig) -> ModelConfig:
        """The student's ``model`` section."""
        return teacher.model_copy(update=self.model_dump(exclude_none=True))


class DistillConfig(StageSection):
    """Knowledge distillation (Hinton et al. 2015): a small student learns from a large teacher's soft outputs.

    The loss is ``alpha · T² · KL(softmax(teacher / T) ‖ softmax(student / T)) + (1 − alpha) · CE(labels)``.
    """

    student: StudentShape = Field(default_factory=StudentShape)
    temperature: float = Field(4.0, gt=0)  # T: softens both distributions; T² keeps the soft gradients' scale
    alpha: float = Field(0.9, ge=0, le=1)  # weight of the soft (teacher) term; 1 - alpha on the hard labels
    # share of the training split whose labels the students see (per class, at least one each); the distilled
    # student learns from the teacher's outputs on every training example, labelled or not
    labelled_fraction: float = Field(1.0, gt=0, le=1)
