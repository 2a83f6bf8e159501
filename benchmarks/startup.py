"""Benchmark: how long each stage's process takes to start, i.e. to import what it runs.

Every DVC stage is its own process, so ``dvc repro`` pays each stage's imports (torch, Lightning,
MLflow, PEFT, matplotlib, ...) once per stage. For every stage in dvc.yaml this times ``python -c
"import stages.<name>"`` in a fresh process, ``--repeats`` times, and reports the median, with the
largest top-level packages from ``python -X importtime`` (cumulative seconds, as Python counts
them: a package imported first by another is counted there).

``--root`` measures another checkout with this interpreter (its code first on the path), e.g. a
commit from before a change:

    python -m benchmarks.startup
    git worktree add /tmp/before ff96497 && python -m benchmarks.startup --root /tmp/before
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

HEAVY = ("torch", "lightning", "mlflow", "peft", "matplotlib", "optuna", "pandas", "sklearn", "scipy", "transformers")


def stage_names(root: Path) -> list[str]:
    return list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])


def import_seconds(root: Path, stage: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import stages.{stage}"], cwd=root, check=True, env=_env(root))
    return time.perf_counter() - started


def heavy_imports(root: Path, stage: str) -> dict[str, float]:
    """Cumulative import seconds of the heavy packages this stage's import loads first-hand."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import stages.{stage}"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        env=_env(root),
    ).stderr
    seconds = {}
    for line in out.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        package = name.strip()
        if package in HEAVY and package not in seconds:
            seconds[package] = int(cumulative) / 1e6
    return seconds


def _env(root: Path) -> dict[str, str]:
    return os.environ | {"PYTHONPATH": str(root)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="the checkout to measure")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stages", nargs="+", help="default: every stage in dvc.yaml")
    args = parser.parse_args()
    root = args.root.resolve()
    print("| stage | import (s), median | largest imports it loads first (cumulative s) |")
    print("|---|---|---|")
    for stage in args.stages or stage_names(root):
        median = statistics.median(import_seconds(root, stage) for _ in range(args.repeats))
        heavy = sorted(heavy_imports(root, stage).items(), key=lambda kv: -kv[1])[:4]
        print(f"| `{stage}` | {median:.2f} | {', '.join(f'{name} {s:.1f}' for name, s in heavy)} |", flush=True)


if __name__ == "__main__":
    main()
