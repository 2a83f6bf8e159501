"""Model compression: distill's teacher pruned, quantised to int8 and halved to fp16, one run each, against the
uncompressed reference, for what a deployment weighs: accuracy against size and latency.

``run``: the stage; ``pruning``: global magnitude pruning; ``precision``: int8 and fp16 copies; ``evaluated``:
a model compressed after training as a run of its own; ``config``: its params section; ``compare``: the
report's section.
"""

from pipeline.paradigms.compress.config import CompressConfig, check_compress
from pipeline.paradigms.plugin import Paradigm

PARADIGM = Paradigm.in_package(__name__, CompressConfig, "full", compare="compare_compressions", checks=check_compress)
