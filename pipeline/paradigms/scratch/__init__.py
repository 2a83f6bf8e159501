"""The scratch control: the same architecture from random weights on the same scarce target data.

Without it no transfer or fine-tuning result means anything. ``run``: the stage; ``config``: its params
section. Its runs appear in transfer's section of the report (transfer vs fine-tune vs scratch).
"""

from pipeline.paradigms.plugin import Paradigm
from pipeline.paradigms.scratch.config import ScratchConfig

PARADIGM = Paradigm.in_package(__name__, ScratchConfig, "target")
