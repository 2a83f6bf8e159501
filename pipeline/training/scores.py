"""Scores of a model's logits against true labels, for loops that evaluate outside a Lightning Trainer."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torchmetrics.functional.classification import multiclass_f1_score


def classification_scores(logits: torch.Tensor, y: np.ndarray, num_classes: Optional[int] = None) -> dict[str, float]:
    """``acc`` and ``loss`` (cross-entropy), and ``f1_macro`` when ``num_classes`` is given."""
    target = torch.from_numpy(y)
    scores = {
        "acc": float((logits.argmax(dim=1) == target).float().mean()),
        "loss": float(torch.nn.functional.cross_entropy(logits, target)),
    }
    if num_classes is not None:
        scores["f1_macro"] = float(multiclass_f1_score(logits, target, num_classes, average="macro"))
    return scores
