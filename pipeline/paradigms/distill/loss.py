"""The distillation loss of Hinton, Vinyals and Dean (2015), "Distilling the Knowledge in a Neural Network"."""

from __future__ import annotations

import torch
from torch.nn import functional as F

UNLABELLED = -1  # the label of a training example whose label the student does not see


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, temperature: float, alpha: float
) -> torch.Tensor:
    """``alpha · T² · KL(p_teacher^T ‖ p_student^T) + (1 − alpha) · CE(student, labels)``.

    The soft term is the batch mean of the KL divergence between the teacher's and the student's
    softmax at temperature ``T``, scaled by ``T²`` so its gradients keep their size as ``T`` grows (as
    the paper does); the hard term is cross-entropy on the examples whose label is known (not
    :data:`UNLABELLED`), zero when the batch has none.
    """
    soft = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=1),
        F.log_softmax(teacher_logits / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    # the mean over the known labels, without a branch on the data (the activation prediction runs it on shapes alone)
    known = (labels != UNLABELLED).sum().clamp(min=1)
    hard = F.cross_entropy(student_logits, labels, ignore_index=UNLABELLED, reduction="sum") / known
    return alpha * temperature**2 * soft + (1 - alpha) * hard
