"""Fine-tuning: the pretrained base adapted to the target task, one run per strategy (full, partial,
and PEFT's LoRA, LoRA-FA and VeRA adapters).

``run``: the stage; ``adapters``: the PEFT adapters (and reloading a saved one); ``config``: its params
section; ``compare``: the report's section on the fine-tuning variants.
"""

from pipeline.paradigms.finetune.config import FinetuneConfig, check_finetune
from pipeline.paradigms.plugin import Paradigm

PARADIGM = Paradigm.in_package(__name__, FinetuneConfig, "target", compare="compare_variants", checks=check_finetune)
