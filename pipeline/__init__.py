"""paradigm-lab: run and compare training paradigms on one dataset and backbone.

Sub-packages, one job each: ``config`` (params.yaml schema), ``data`` (load, split,
write the prepared datasets), ``models`` (backbones, the Lightning module, checkpoints),
``training`` (trainer, callbacks, the fit-and-test runner), ``memory`` (estimated and
measured training memory), ``tracking`` (MLflow runs, figures, stage outputs) and
``paradigms`` (one module per training paradigm).
"""
