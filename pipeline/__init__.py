"""paradigm-lab: run and compare training paradigms on one dataset and backbone.

Sub-packages, one job each: ``config`` (params.yaml schema), ``data`` (load, split,
write the prepared datasets), ``models`` (backbones, the Lightning module, checkpoints),
``training`` (trainer, callbacks, the fit-and-test runner), ``memory`` (estimated and
measured training memory), ``tracking`` (MLflow runs, figures, stage outputs) and
``paradigms`` (one module per training paradigm).

Every entry point (``python -m stages.<stage>``, ``pipeline.sweep``, ``pipeline.profile``, ``pipeline.compare``,
``pipeline.tidy``, a paradigm's own command) imports this first: in a Python without the project's packages it ends
in one line saying how to use the project's environment, not in a traceback of its first import.
"""

from pipeline.environment import require_project_environment

require_project_environment()
