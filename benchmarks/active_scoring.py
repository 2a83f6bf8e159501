"""Benchmark: how fast each active-learning query strategy scores the unlabelled pool (samples/s).

It calls exactly what a round of the pipeline calls: ``pipeline.paradigms.active_learning.rounds.query`` with the
stage's ``Learner`` (the project's LightningModule under Lightning Fabric on ``--device``). For
every strategy that is: index the pool's inputs on the device, predict class probabilities in one
pass over the whole pool (``bald``: ``active_learning.mc_samples`` passes with dropout on), copy them
to the CPU, rank with baal's heuristic (``random``: a random draw, after the same prediction, which
the round logs as pool uncertainty), pick ``active_learning.query_size``, and compute the
predictive entropy of the pool and the query. The pool is ``--pool`` synthetic random images of
``--shape`` (random labels: for timing, not learning); the model comes from ``params.yaml`` (and
``--set``) and is first trained ``active_learning.train_steps`` steps (default here 20) on a seed set
of ``prepare.active_learning.initial_labelled`` examples so that it is not at its initial weights.
``active_learning.pool_subsample`` is off by default here: the whole pool is scored.

Per strategy: one warm-up query, then ``--repeats`` timed ones; the median is reported, split into
the calls ``query`` makes, each timed around the call: the model's prediction (the learner's
``probabilities`` / ``mc_dropout_probabilities``, copy to the CPU included), the ranking
(``pipeline.paradigms.active_learning.strategies.select``: baal's heuristic, on the CPU), the predictive entropy of
pool and query, and the rest (indexing the pool's inputs on the device, bald's mean over samples).
CUDA is synchronised at every clock reading.

    python -m benchmarks.active_scoring       # 20,000 3x32x32 images, mlp 128-128, every strategy (a minute on 2 cores)
    python -m benchmarks.active_scoring --pool 2000 --repeats 1 # a quick check
    python -m benchmarks.active_scoring --device cuda --pool 200000 --set "model.hidden_sizes=[2048, 2048]"   # on a GPU

The learner predicts the pool in one batch, so device memory grows with ``--pool`` (inputs,
activations of the widest layer, and ``mc_samples`` copies of the probabilities on the CPU for
``bald``). The table is printed; ``--csv`` writes one row per strategy and repeat.
"""

from __future__ import annotations

import copy
import statistics
import time

import numpy as np
import pandas as pd
import torch

from benchmarks.common import base_params, benchmark_parser, with_overrides
from benchmarks.devices import add_device_option, describe, device_overrides, model_words, pick_device, synthetic_images
from pipeline.models.classifier import build_classifier
from pipeline.paradigms.active_learning import PARADIGM, rounds
from pipeline.paradigms.active_learning.config import QUERY_STRATEGIES
from pipeline.paradigms.active_learning.labels import LabelState
from pipeline.paradigms.active_learning.learner import Learner
from pipeline.paradigms.active_learning.strategies import QueryStrategy, query_strategy
from pipeline.params import parse_params
from pipeline.seeding import rng_for, seed_everything
from pipeline.training.clock import now

STAGE = PARADIGM.stage
DEFAULT_SETTING = ["active_learning.pool_subsample=null", "active_learning.train_steps=20"]


class Clock:
    """Times the calls ``query`` makes, by name: the learner's predictions, the strategy's ranking, the entropy.

    Instance attributes shadow the learner's two prediction methods and each strategy's ``select``;
    ``predictive_entropy`` is looked up in ``pipeline.paradigms.active_learning.rounds`` at call time, so it is
    wrapped there for as long as the clock is open.
    """

    def __init__(self, learner: Learner):
        self.device = learner.device
        self.seconds = {"predict": 0.0, "rank": 0.0, "entropy": 0.0}
        for name in ("probabilities", "mc_dropout_probabilities"):
            setattr(learner, name, self._timed(getattr(learner, name), "predict"))
        self._originals = {"predictive_entropy": rounds.predictive_entropy}

    def strategy(self, name: str) -> QueryStrategy:
        """The strategy ``name``, its ranking timed."""
        picker = query_strategy(name)
        picker.select = self._timed(picker.select, "rank")
        return picker

    def __enter__(self) -> "Clock":
        rounds.predictive_entropy = self._timed(self._originals["predictive_entropy"], "entropy")
        return self

    def __exit__(self, *exc) -> None:
        for name, function in self._originals.items():
            setattr(rounds, name, function)

    def reset(self) -> None:
        self.seconds = dict.fromkeys(self.seconds, 0.0)

    def _timed(self, function, bucket: str):
        def call(*args, **kwargs):
            started = now(self.device)
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[bucket] += now(self.device) - started

        return call


def main() -> None:
    parser = benchmark_parser(
        __doc__, "active-scoring", "strategy, repeat, scored, seconds, predict/rank/entropy_seconds"
    )
    parser.add_argument("--pool", type=int, default=20_000, help="unlabelled examples to score")
    parser.add_argument(
        "--shape", type=int, nargs="+", default=[3, 32, 32], metavar="DIM", help="one example's shape, e.g. C H W"
    )
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--strategies", nargs="+", choices=QUERY_STRATEGIES, default=list(QUERY_STRATEGIES))
    parser.add_argument("--repeats", type=int, default=3, help="timed queries per strategy, after one warm-up")
    add_device_option(parser)
    args = parser.parse_args()
    device = pick_device(args.device)
    args.set = DEFAULT_SETTING + args.set
    params = parse_params(with_overrides(copy.deepcopy(base_params(args)), device_overrides(device)))
    cfg, shape = params.active_learning, tuple(args.shape)
    seed_size = params.prepare.active_learning.initial_labelled
    X, y = synthetic_images(seed_size + args.pool, shape, args.classes, seed=params.seed)

    seed_everything(params.seed)
    model = build_classifier(params.model, shape, args.classes)
    learner = Learner(model, args.classes, params.trainer_for(STAGE), cfg.train_steps, warm_start=False)
    X_train, y_train = torch.from_numpy(X).to(learner.device), torch.from_numpy(y).to(learner.device)
    state = LabelState.start(np.arange(seed_size), y[:seed_size], np.arange(seed_size, seed_size + args.pool))
    learner.fit(X_train[:seed_size], y_train[:seed_size], torch.Generator().manual_seed(params.seed))
    clock = Clock(learner)
    print(
        f"device: {describe(learner.device)}; pool of {args.pool:,} examples of shape {shape}; model "
        f"{model_words(params.model)}, "
        f"dropout {params.model.dropout}, "
        f"precision {params.trainer_for(STAGE).precision}; query size {cfg.query_size}, bald {cfg.mc_samples} dropout "
        "samples",
        flush=True,
    )

    rows = []
    started = time.perf_counter()
    with clock:
        for strategy in args.strategies:
            picker = clock.strategy(strategy)
            if picker.mc_dropout and params.model.dropout == 0:
                print(f"{strategy}: skipped, it samples with dropout on and model.dropout is 0", flush=True)
                continue
            for repeat in range(args.repeats + 1):  # repeat 0: warm-up
                clock.reset()
                began = now(learner.device)
                rng = rng_for(params.seed, f"benchmark/{strategy}/{repeat}")
                asked = rounds.query(learner, picker, X_train, state, cfg.query_size, cfg, rng)
                seconds = now(learner.device) - began
                if repeat:
                    rows.append(
                        {
                            "strategy": strategy,
                            "repeat": repeat,
                            "scored": len(asked.scored),
                            "seconds": seconds,
                            **{f"{k}_seconds": v for k, v in clock.seconds.items()},
                            "forward_passes": cfg.mc_samples if picker.mc_dropout else 1,
                        }
                    )
            mine = [r for r in rows if r["strategy"] == strategy]
            print(
                f"{strategy}: {statistics.median(r['seconds'] for r in mine):.3f} s per query of {mine[0]['scored']:,}",
                flush=True,
            )
    results = pd.DataFrame(rows)
    if args.csv:
        results.to_csv(args.csv, index=False)
    lines = [
        "| strategy | forward passes | pool scored | s per query | samples/s | of which: model prediction (s) | "
        "ranking (s) | "
        "entropy (s) | the rest: indexing the pool, ... (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for strategy, group in results.groupby("strategy", sort=False):
        seconds = statistics.median(group["seconds"])
        part = {k: statistics.median(group[f"{k}_seconds"]) for k in ("predict", "rank", "entropy")}
        rest = statistics.median(
            group["seconds"] - group["predict_seconds"] - group["rank_seconds"] - group["entropy_seconds"]
        )
        lines.append(
            f"| {strategy} | {group['forward_passes'].iloc[0]} | {group['scored'].iloc[0]:,} | {seconds:.3f} | "
            f"{group['scored'].iloc[0] / seconds:,.0f} | {part['predict']:.3f} | {part['rank']:.3f} | "
            f"{part['entropy']:.3f} | {rest:.3f} |"
        )
    print(f"\n{time.perf_counter() - started:.0f} s of queries\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
