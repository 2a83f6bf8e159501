"""Transfer learning: new top layers on the frozen pretrained body, trained on the scarce target task.

``run``: the stage; ``config``: its params section; ``compare``: transfer vs fine-tuning vs the scratch
control, the report's section on the target task.
"""

from pipeline.paradigms.plugin import Paradigm
from pipeline.paradigms.transfer.config import TransferConfig, check_transfer

PARADIGM = Paradigm.in_package(__name__, TransferConfig, "target", compare="compare_on_target", checks=check_transfer)
