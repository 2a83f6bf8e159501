"""Benchmark: the small-model inner loop, the pipeline's trainer against a hand-written PyTorch loop.

Federated clients and active-learning rounds train the default model for a few steps, many times per
run, through :class:`~pipeline.training.in_memory.InMemoryTrainer`. Side by side on the same model
(``build_classifier`` from params.yaml's ``model``), the same data (digits-sized random inputs), the same
optimizer (``build_optimizer``), the same shuffled batches (``TensorSet.batches`` with the same seed):

- **federated client**: :class:`~pipeline.paradigms.federated.client.LocalTrainer` (FedAvg) trains one
  client of ``--client-examples`` examples for one local epoch at ``federated.local_batch_size``, from
  the global weights and a fresh optimizer, as a round does;
- **active-learning round**: :class:`~pipeline.paradigms.active_learning.learner.Learner` makes
  ``active_learning.train_steps`` steps on ``--labelled`` labelled examples at ``trainer.batch_size``;
- **hand-written**: ``for X, y in batches: loss = cross_entropy(model(X), y); zero_grad; backward; step``
  over the same batches, with the same optimizer reset.

Each side is timed over ``--clients`` client trainings or ``--rounds`` active-learning rounds,
``--repeats`` times, alternating sides; the figure is milliseconds per step, the median over the
repeats. torch runs ``--threads`` threads (default 1, the pipeline's ``trainer.num_threads``).

    python -m benchmarks.inner_loop
    python -m benchmarks.inner_loop --threads 2 --csv benchmark-inner-loop.csv
"""

from __future__ import annotations

import time
from typing import Callable

import pandas as pd
import torch

from benchmarks.common import base_params, benchmark_parser
from pipeline.models.classifier import build_classifier
from pipeline.paradigms.active_learning.learner import Learner
from pipeline.paradigms.federated.client import Client, LocalTrainer
from pipeline.paradigms.federated.layout import StateLayout
from pipeline.paradigms.federated.wire import Codec
from pipeline.params import parse_params
from pipeline.training.in_memory import TensorSet
from pipeline.training.optimizers import build_optimizer

SHAPE, CLASSES = (1, 8, 8), 10


def examples(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, *SHAPE), generator=g) * 16, torch.randint(0, CLASSES, (n,), generator=g)


def hand_written(model: torch.nn.Module, cfg, data: TensorSet, batch_size: int, steps: int | None):
    """One training the plain way: a fresh optimizer state, then forward, loss, backward, step per batch."""
    optimizer = build_optimizer(model.parameters(), cfg)

    def train(generator: torch.Generator) -> int:
        optimizer.state.clear()
        model.train()
        done = 0
        while True:
            for X, y in data.batches(batch_size, generator):
                loss = torch.nn.functional.cross_entropy(model(X), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                done += 1
                if steps is not None and done == steps:
                    return done
            if steps is None:
                return done

    return train


def timed(train: Callable[[torch.Generator], int], trainings: int) -> float:
    """Milliseconds per step over ``trainings`` trainings."""
    steps, started = 0, time.perf_counter()
    for i in range(trainings):
        steps += train(torch.Generator().manual_seed(i))
    return (time.perf_counter() - started) * 1e3 / steps


def main() -> None:
    parser = benchmark_parser(__doc__, "inner-loop", "loop, side, repeat, ms_per_step")
    parser.add_argument("--client-examples", type=int, default=117, help="a default-pipeline client (1,170 / 10)")
    parser.add_argument("--labelled", type=int, default=200, help="an active-learning labelled set")
    parser.add_argument("--clients", type=int, default=200, help="client trainings timed per repeat")
    parser.add_argument("--rounds", type=int, default=5, help="active-learning rounds timed per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = parse_params(base_params(args))
    torch.manual_seed(params.seed)
    rows = []

    def compare(loop: str, pipeline_train, plain_train, trainings: int) -> None:
        for repeat in range(args.repeats):
            for side, train in (("pipeline", pipeline_train), ("hand-written", plain_train)):
                rows.append({"loop": loop, "side": side, "repeat": repeat, "ms_per_step": timed(train, trainings)})

    # a federated client's local epoch
    cfg = params.trainer_for("federated")
    batch = params.federated.local_batch_size
    X, y = examples(args.client_examples, params.seed)
    client = Client(0, X, y)
    model = build_classifier(params.model, SHAPE, CLASSES)
    layout = StateLayout.of(model)
    trainer = LocalTrainer(model, CLASSES, cfg, Codec("none", layout), batch)
    start = trainer.weights()

    client_steps = len(client.batch_indices(batch, torch.Generator()))  # one local epoch

    def client_round(generator: torch.Generator) -> int:
        trainer.start_from(start)
        trainer.train(client, generator, epochs=1)
        return client_steps

    plain_model = build_classifier(params.model, SHAPE, CLASSES)
    compare("federated client", client_round, hand_written(plain_model, cfg, client, batch, None), args.clients)

    # an active-learning round
    cfg = params.trainer_for("active_learning")
    steps = params.active_learning.train_steps
    labelled = TensorSet(*examples(args.labelled, params.seed + 1))
    learner = Learner(build_classifier(params.model, SHAPE, CLASSES), CLASSES, cfg, steps, warm_start=False)

    def al_round(generator: torch.Generator) -> int:
        learner.fit(labelled.X, labelled.y, generator)
        return steps

    plain_model = build_classifier(params.model, SHAPE, CLASSES)
    compare(
        "active-learning round", al_round, hand_written(plain_model, cfg, labelled, cfg.batch_size, steps), args.rounds
    )

    results = pd.DataFrame(rows)
    if args.csv:
        results.to_csv(args.csv, index=False)
    table = results.groupby(["loop", "side"], sort=False)["ms_per_step"].median().unstack()
    table["pipeline over hand-written"] = (table["pipeline"] / table["hand-written"] - 1).map("{:+.1%}".format)
    print(f"torch threads: {torch.get_num_threads()}; ms per step, median of {args.repeats} repeats")
    print(table.to_markdown(floatfmt=".3f"))


if __name__ == "__main__":
    main()
