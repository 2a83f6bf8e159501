"""Knowledge distillation: a small student learns from a large teacher's softened outputs (Hinton et al. 2015).

``run``: the stage (teacher, control student, distilled student); ``loss``: the distillation loss;
``module``: the student's LightningModule; ``config``: its params section; ``compare``: the report's section.
"""

from pipeline.paradigms.distill.config import DistillConfig
from pipeline.paradigms.plugin import Paradigm

# A sweep tunes the distilled student (temperature, alpha, its shape): its own best validation loss.
PARADIGM = Paradigm.in_package(
    __name__, DistillConfig, "full", compare="compare_students", sweep_metric="val/distilled_best_loss"
)
