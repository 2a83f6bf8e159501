"""Active learning: label what the model is least sure of, round after round.

- ``labels``: which training examples have a label, and the pool still waiting for one;
- ``strategies``: how the pool is ranked (random, or baal's uncertainty heuristics);
- ``learner``: the model retrained on the labelled set each round;
- ``rounds``: one round (train, evaluate, query, label) and the simulated loop of many;
- ``curves``: the area under the learning curve and labels needed to reach an accuracy;
- ``annotate``: the human loop outside ``dvc repro``, exporting a query and importing its labels.
"""
