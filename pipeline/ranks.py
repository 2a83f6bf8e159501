"""Which process of a multi-GPU or multi-node run this is.

With ``trainer.strategy: ddp`` (or several devices), every process runs the whole stage script, so that
each builds the same models and joins the same fits. Only the first process (global rank 0) may leave
anything behind: its outputs and MLflow runs are the stage's; the others train alongside and write
nowhere that lasts (:mod:`pipeline.io` and :func:`pipeline.tracking.runs.resolve_tracking_uri` ask here).
The rank is read from the variables that Lightning's launcher, ``torchrun`` and SLURM set, so it is known
before the first fit starts.
"""

from __future__ import annotations

import os

# torchrun sets RANK; Lightning's launcher sets NODE_RANK and LOCAL_RANK; SLURM sets SLURM_PROCID per task.
_RANK_VARIABLES = ("RANK", "NODE_RANK", "LOCAL_RANK")


def is_global_zero() -> bool:
    """True unless this process is a second (or later) process of a distributed run."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"]) == 0
    if any(name in os.environ for name in _RANK_VARIABLES):
        return all(int(os.environ.get(name, "0")) == 0 for name in _RANK_VARIABLES[1:])
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1:  # srun started several tasks of this script
        return int(os.environ.get("SLURM_PROCID", "0")) == 0
    return True
