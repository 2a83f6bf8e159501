"""Optuna hyper-parameter sweeps of any training stage, tracked in MLflow.

``space`` checks and draws the search space of ``sweep.<stage>``, ``objective`` runs the stage
for one trial, ``study`` shares the trials among worker processes exactly, ``storage`` checks
``--storage`` and retries the trial of a worker that died, ``tracking`` makes
the MLflow parent and trial runs, ``apply`` writes the best params back into params.yaml.
Run it as ``python -m pipeline.sweep <stage> --n-trials N``.
"""
