"""Pre-training: the base model on the abundant source task, what transfer and fine-tuning start from.

``run``: the stage (its checkpoint is :data:`pipeline.paths.BASE_CHECKPOINT`); ``config``: its params section.
"""

from pipeline.paradigms.plugin import Paradigm
from pipeline.paradigms.pretrain.config import PretrainConfig

PARADIGM = Paradigm.in_package(__name__, PretrainConfig, "source")
