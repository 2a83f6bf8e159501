"""Benchmark: torch's CPU thread count on an idle and on a busy machine, for the models the pipeline trains.

For each backbone (the default MLP, the CNN) and each thread count, a fresh process times training steps
(forward, backward, Adam step; batch 64 of 8x8 digits-sized inputs) and reports the median of
``--repeats`` runs of ``--steps`` steps each. "busy" starts CPU-burning processes (``--burners``, default
two per core) for the duration (bounded: they are killed when the measurement ends), as other jobs on a
laptop, a CI runner or a shared server would. The table is the one in docs/benchmarks.md.

``--stages`` times whole stage processes instead (start-up included), each thread count idle and busy, in a
temporary workspace that links this one's prepared data and base model (run ``make run`` first) and has its
own params.yaml and MLflow store: a step's time hides what a stage's many small operations pay.

    python -m benchmarks.threads --csv benchmark-threads.csv
    python -m benchmarks.threads --stages finetune federated --csv benchmark-threads-stages.csv
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd

from benchmarks.common import show_table

BURN = "while True: pass"


@contextmanager
def busy(processes: int) -> Iterator[None]:
    """``processes`` CPU burners for the block's duration."""
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(processes)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def step_ms(backbone: str, threads: int, steps: int, repeats: int) -> list[float]:
    """Median milliseconds per training step of each repeat, measured in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.threads", "--measure", backbone, str(threads), str(steps), str(repeats)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ | {"OMP_NUM_THREADS": str(threads)},
    )
    return [float(x) for x in out.stdout.split()]


def stage_seconds(stage: str, threads: str) -> float:
    """Wall seconds of ``python -m stages.<stage>`` with ``trainer.num_threads: threads``, in a scratch workspace."""
    import yaml

    with tempfile.TemporaryDirectory(prefix="benchmark-threads-") as tmp:
        root = Path(tmp)
        for name in ("pipeline", "stages", "data"):
            (root / name).symlink_to(Path.cwd() / name)
        (root / "models").mkdir()
        (root / "models" / "pretrain").symlink_to(Path.cwd() / "models" / "pretrain")
        params = yaml.safe_load(Path("params.yaml").read_text())
        params["trainer"]["num_threads"] = threads if threads == "all" else int(threads)
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=root, env=env, check=True, capture_output=True)
        return time.perf_counter() - started


def measure(backbone: str, threads: int, steps: int, repeats: int) -> None:
    import torch

    from pipeline.config.schema import ModelConfig
    from pipeline.models.classifier import build_classifier

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_classifier(ModelConfig(backbone=backbone, hidden_sizes=[128, 128], channels=[16, 32]), (8, 8), 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.rand(64, 8, 8), torch.randint(0, 10, (64,))
    for _ in range(20):  # warm-up
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    medians = []
    for _ in range(repeats):
        times = []
        for _ in range(steps):
            started = time.perf_counter()
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            times.append(time.perf_counter() - started)
        medians.append(1000 * statistics.median(times))
    print(" ".join(f"{m:.4f}" for m in medians))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        backbone, threads, steps, repeats = sys.argv[2], *map(int, sys.argv[3:6])
        measure(backbone, threads, steps, repeats)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--threads", nargs="+", type=int, default=sorted({1, os.cpu_count() or 1}))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stages", nargs="+", help="time these whole stages instead of training steps")
    parser.add_argument("--burners", type=int, default=2 * (os.cpu_count() or 1), help="CPU burners when busy")
    parser.add_argument("--csv", help="also write every result (load, backbone, threads, median_ms, ...)")
    args = parser.parse_args()
    if args.stages:
        rows = []
        for load in ("idle", "busy"):
            for stage in args.stages:
                for threads in ("1", "all"):
                    with busy(args.burners if load == "busy" else 0):
                        seconds = stage_seconds(stage, threads)
                    rows.append({"load": load, "stage": stage, "num_threads": threads, "seconds": round(seconds, 1)})
                    print(rows[-1], flush=True)
        report(pd.DataFrame(rows), args, f"busy = {args.burners} burners; one run each, start-up included")
        return
    rows = []
    for load in ("idle", "busy"):
        for backbone in args.backbones:
            for threads in args.threads:
                if load == "busy":
                    with busy(args.burners):
                        medians = step_ms(backbone, threads, args.steps, args.repeats)
                else:
                    medians = step_ms(backbone, threads, args.steps, args.repeats)
                row = {
                    "load": load,
                    "backbone": backbone,
                    "threads": threads,
                    "median_ms": round(statistics.median(medians), 3),
                    "min_ms": round(min(medians), 3),
                    "max_ms": round(max(medians), 3),
                }
                print(row, flush=True)
                rows.append(row)
    what = f"busy = {args.burners} burners; medians of {args.repeats} repeats of {args.steps} steps"
    report(pd.DataFrame(rows), args, what)


def report(table: pd.DataFrame, args: argparse.Namespace, what: str) -> None:
    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    show_table(table, args.csv, f"{os.cpu_count()} CPUs, OMP_WAIT_POLICY {policy}; {what}")


if __name__ == "__main__":
    main()
