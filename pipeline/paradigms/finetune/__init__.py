"""Fine-tuning: the pretrained base adapted to the target task, one run per strategy (full, partial,
PEFT's LoRA, LoRA-FA, VeRA and PiSSA adapters, and the SVD adapters lora_fa_svd and svd_diag).

``run``: the stage; ``adapters``: the adapters (and reloading a saved one); ``svd_basis``: the top singular
vectors of a layer; ``svd_diag``: the SVD diagonal + sparse adapter; ``config``: its params section;
``compare``: the report's section on the fine-tuning variants.
"""

from pipeline.paradigms.finetune.config import FinetuneConfig, check_finetune
from pipeline.paradigms.plugin import Paradigm

PARADIGM = Paradigm.in_package(__name__, FinetuneConfig, "target", compare="compare_variants", checks=check_finetune)
