"""Benchmark: the faults a hostile but fair user tries, each run as that user would, and what came back.

Each case runs the real command (a stage script, a sweep, the labelling tool) in a temporary workspace
beside the project's code, with tiny params and its own MLflow store, and records the exit code, the
lines on stderr (besides progress), whether a traceback appeared, the error line and the seconds it
took, start-up included. The kill case trains a federated stage, kills it (SIGKILL) at its second
round, and runs it again: what the kill left and what the next start cleaned. The table is the one in
docs/benchmarks.md.

    python -m benchmarks.faults --csv benchmark-faults.csv
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import pandas as pd
import yaml

from benchmarks.common import show_table
from pipeline.params import load_params

PROJECT = Path(__file__).resolve().parents[1]
TINY = {
    "model": {"hidden_sizes": [32], "channels": [8]},
    "trainer": {"max_epochs": 2, "early_stopping_patience": None},
    "federated": {"rounds": 4, "strategies": ["fedavg"], "partitions": ["iid"]},
}
PROGRESS = re.compile(r"\] (epoch|round) \d+/\d+")


class Workspace:
    """A folder with the project's code linked in, its own params.yaml and MLflow store."""

    def __init__(self, root: Path, params: dict):
        self.root = root
        for name in ("pipeline", "stages"):
            (root / name).symlink_to(PROJECT / name)
        self.params = params
        self.write_params(yaml.safe_dump(params, sort_keys=False))
        self.env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "PYTHONUNBUFFERED": "1"}

    def write_params(self, text: str | bytes) -> None:
        path = self.root / "params.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())

    def edited(self, **sections) -> str:
        tree = yaml.safe_load(yaml.safe_dump(self.params))
        for key, value in sections.items():
            *parents, leaf = key.split("__")
            node = tree
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return yaml.safe_dump(tree, sort_keys=False)

    def run(self, args: list[str], env: Optional[dict] = None, python: Optional[list[str]] = None) -> dict:
        started = time.perf_counter()
        done = subprocess.run(
            [*(python or [sys.executable]), *args],
            cwd=self.root,
            env=self.env | (env or {}),
            capture_output=True,
            text=True,
            timeout=900,
        )
        return outcome(done.returncode, done.stderr, time.perf_counter() - started)


def outcome(code: int, stderr: str, seconds: float) -> dict:
    lines = [line for line in stderr.splitlines() if line.strip() and not PROGRESS.search(line)]
    errors = [line for line in lines if line.startswith("error:")]
    return {
        "exit": code,
        "stderr_lines": len(lines),
        "traceback": "Traceback" in stderr,
        "line": (errors or lines or [""])[-1][:160],
        "seconds": round(seconds, 1),
    }


def kill_and_rerun(ws: Workspace) -> dict:
    """Federated, killed at its second round, then run again: leftovers and RUNNING runs before and after."""
    from mlflow.tracking import MlflowClient

    for stage in ("prepare", "pretrain"):
        assert ws.run(["-m", f"stages.{stage}"])["exit"] == 0, stage
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "stages.federated"], cwd=ws.root, env=ws.env, stderr=subprocess.PIPE, text=True
    )
    seen = 0
    for line in process.stderr:
        seen += bool(PROGRESS.search(line))
        if seen == 2:
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    client = MlflowClient(ws.env["MLFLOW_TRACKING_URI"])
    experiments = [e.experiment_id for e in client.search_experiments()]

    def state() -> tuple[int, int]:
        leftovers = [p for p in ws.root.rglob(".*.tmp*") if ".git" not in p.parts]
        return len(leftovers), len(client.search_runs(experiments, "attributes.status = 'RUNNING'"))

    left, running = state()
    again = ws.run(["-m", "stages.federated"])
    after_left, after_running = state()
    killed = len(client.search_runs(experiments, "attributes.status = 'KILLED'"))
    line = (
        f"killed (exit {process.returncode}): {left} temp folder(s), {running} RUNNING run(s); "
        f"re-run exit {again['exit']}: {after_left} temp, {after_running} RUNNING, {killed} KILLED"
    )
    return outcome(again["exit"], "", time.perf_counter() - started) | {"line": line}


def cases(ws: Workspace, scratch: Path) -> dict[str, Callable[[], dict]]:
    (scratch / "a_file").write_text("")
    params = ws.edited()

    def with_params(text: str | bytes, args: list[str]) -> Callable[[], dict]:
        def run() -> dict:
            ws.write_params(text)
            try:
                return ws.run(args)
            finally:
                ws.write_params(params)

        return run

    def truncated_store() -> dict:
        assert ws.run(["-m", "stages.prepare"])["exit"] == 0
        db = ws.root / "mlflow.db"
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
        try:
            return ws.run(["-m", "stages.compare"])
        finally:
            db.unlink()

    sweep = ["-m", "pipeline.sweep", "scratch", "--n-trials", "1", "--storage"]
    return {
        "MLFLOW_TRACKING_URI=http://127.0.0.1:1, stage prepare": lambda: ws.run(
            ["-m", "stages.prepare"], env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:1"}
        ),
        "mlflow.db truncated, then stage compare": truncated_store,
        "tracking URI under a file": lambda: ws.run(
            ["-m", "stages.prepare"], env={"MLFLOW_TRACKING_URI": f"sqlite:///{scratch / 'a_file'}/x/mlflow.db"}
        ),
        "trainer.devices: 0": with_params(ws.edited(trainer__devices=0), ["-m", "stages.scratch"]),
        "seed: 99999999999999999999999": with_params(
            params.replace("seed: 42", "seed: 99999999999999999999999"), ["-m", "stages.prepare"]
        ),
        "prepare.noise_std: .inf": with_params(ws.edited(prepare__noise_std=float("inf")), ["-m", "stages.prepare"]),
        "empty params.yaml": with_params("", ["-m", "stages.prepare"]),
        "a key given twice": with_params(params + "seed: 7\n", ["-m", "stages.prepare"]),
        "params.yaml not UTF-8": with_params(b"seed: 4\xff\n", ["-m", "stages.prepare"]),
        "annotate export --strategy ../../bogus": lambda: ws.run(
            ["-m", "pipeline.paradigms.active_learning.annotate", "export", "--strategy", "../../bogus"]
        ),
        "sweep --storage bogus://x": lambda: ws.run([*sweep, "bogus://x"]),
        "sweep --storage journal:<file>/x.log": lambda: ws.run([*sweep, f"journal:{scratch / 'a_file'}/x.log"]),
        "stage run by a Python without the packages": lambda: ws.run(
            ["-m", "stages.prepare"], python=[sys.executable, "-S"]
        ),
        "SIGKILL of stages.federated mid-run, then run again": lambda: kill_and_rerun(ws),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=PROJECT / "params.yaml")
    parser.add_argument("--csv", type=Path, help="also write the table (case, exit, stderr_lines, ...)")
    args = parser.parse_args()
    params = load_params(args.params).model_dump(mode="json")
    for section, values in TINY.items():
        params[section] = params.get(section, {}) | values
    rows = []
    with tempfile.TemporaryDirectory(prefix="benchmark-faults-") as tmp:
        root, scratch = Path(tmp) / "ws", Path(tmp) / "scratch"
        root.mkdir()
        scratch.mkdir()
        ws = Workspace(root, params)
        for name, case in cases(ws, scratch).items():
            row = {"case": name} | case()
            print(f"{name}: exit {row['exit']}, {row['seconds']} s, {row['line']}", flush=True)
            rows.append(row)
    show_table(pd.DataFrame(rows), args.csv, f"torch threads: default; machine: {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
