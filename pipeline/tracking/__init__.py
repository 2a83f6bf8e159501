"""Tracking: MLflow runs with the project's tags, figures, and the files each stage writes for DVC."""
