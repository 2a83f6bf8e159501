"""Multi-task learning: one network with a shared body and a branch per task, against one separate
model per task with the same backbone and budget.

``run``: the stage; ``task_labels``: each task's labels from its definition; ``config``: its params
section; ``compare``: the report's section (accuracy per task, costs of one network against the separate
ones). The networks themselves are :mod:`pipeline.models.multitask`.
"""

from pipeline.paradigms.multitask.config import MultitaskConfig, check_multitask
from pipeline.paradigms.plugin import Paradigm

# Its test accuracy is the mean over tasks with their own label sets (parity, thresholds, columns), which the
# full task's baselines do not describe.
PARADIGM = Paradigm.in_package(
    __name__, MultitaskConfig, "full", compare="compare_with_separate_models", checks=check_multitask, judged_against=()
)
