"""Personalisation: after federated training each client fine-tunes the global model on its own data.

A client's accuracy is measured on the held-out test split weighted to its own label mix
(each class's test accuracy times the share of that class in the client's data): how well
the model serves data like the client's, without taking examples away from training.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.paradigms.federated.client import Client, LocalTrainer


def class_accuracy(logits: torch.Tensor, y: np.ndarray, num_classes: int) -> np.ndarray:
    correct = logits.argmax(dim=1).numpy() == y
    return np.bincount(y[correct], minlength=num_classes) / np.maximum(np.bincount(y, minlength=num_classes), 1)


def personalize(
    trainer: LocalTrainer,
    clients: list[Client],
    global_weights: torch.Tensor,
    steps: int,
    X_test: torch.Tensor,
    y_test: np.ndarray,
    num_classes: int,
    rng: np.random.Generator,
) -> list[dict[str, float]]:
    """Per client: its accuracy with the global model and after ``steps`` local steps from it."""
    trainer.start_from(global_weights)
    before = class_accuracy(trainer.predict(X_test), y_test, num_classes)
    rows = []
    for client in clients:
        trainer.start_from(global_weights)
        trainer.train(client, torch.Generator().manual_seed(int(rng.integers(2**62))), steps=steps)
        after = class_accuracy(trainer.predict(X_test), y_test, num_classes)
        shares = client.class_shares(num_classes)
        rows.append(
            {
                "client": client.id,
                "examples": len(client),
                "acc_before": float(shares @ before),
                "acc_after": float(shares @ after),
            }
        )
    trainer.start_from(global_weights)
    return rows
