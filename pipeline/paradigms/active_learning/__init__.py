"""Active learning: label what the model is least sure of, round after round, against labelling at random.

``run``: the stage (one run per query strategy); ``strategies``: the query strategies; ``labels``: the
labelled set and the pool; ``learner``: the model retrained each round; ``rounds``: one round and the
simulated loop; ``curves``: summaries of a learning curve; ``annotate`` and ``session``: the human
labelling loop outside ``dvc repro``; ``config``: its params section; ``compare``: the report's section.
"""

from pipeline.paradigms.active_learning.config import ActiveLearningConfig, check_active_learning
from pipeline.paradigms.plugin import Paradigm

# A sweep scores the model after the last round: no best one is picked on validation. Its models see a few
# hundred labels, so a logistic regression fitted on the whole training split is no floor for them.
PARADIGM = Paradigm.in_package(
    __name__,
    ActiveLearningConfig,
    "full",
    compare="compare_with_random",
    sweep_metric="val/loss",
    checks=check_active_learning,
    judged_against=("chance", "majority"),
)
