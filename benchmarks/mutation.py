"""Mutation testing: how many small bugs planted in the modules every result rests on the suite catches.

``mutmut`` (configured in pyproject.toml's ``[tool.mutmut]``: the modules in ``only_mutate``, the tests in
``pytest_add_cli_args_test_selection``) copies the code to ``mutants/``, plants one change at a time (``<`` for
``<=``, ``0`` for ``1``, an argument dropped, a string changed ...) and runs the tests that reach the changed
function. A mutant is *killed* when a test fails (or it hangs past mutmut's timeout), *survives* when every test
passes. This prints each module's score (killed / mutants) and, with ``--survivors``, each survivor's changed line:
docs/benchmarks.md gives the scores and why each survivor left is equivalent or not worth a test.

    python -m benchmarks.mutation --csv benchmark-mutation.csv      # make mutation
    python -m benchmarks.mutation --no-run --survivors              # the last run's results again

mutmut keeps its results in ``mutants/``: a second run re-tests only the functions whose code changed (delete the
folder for a run from scratch).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
from mutmut.stats import status_by_exit_code

from benchmarks.common import show_table

CAUGHT = ("killed", "timeout")  # a test failed, or the mutant hung past mutmut's timeout
ROOT = Path(__file__).resolve().parents[1]  # mutmut reads its configuration and keeps its results here


def modules() -> list[str]:
    """The files pyproject.toml's ``[tool.mutmut]`` mutates."""
    try:
        from tomllib import loads
    except ImportError:  # Python 3.10: mutmut's own dependency reads TOML there
        from toml import loads
    return loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]["only_mutate"]


def results(path: str, root: Path = ROOT) -> dict[str, str]:
    """Each mutant of ``path`` and its status in mutmut's words (``killed``, ``survived``, ``no tests`` ...).

    Raises:
        SystemExit: one line, when mutmut has no results for ``path`` under ``root`` (it has not run yet)."""
    meta = root / "mutants" / f"{path}.meta"
    if not meta.exists():
        raise SystemExit(f"{meta}: no mutation results for {path}; run `make mutation` first")
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    return {name: status_by_exit_code[code] for name, code in codes.items()}


def score(path: str) -> dict[str, object]:
    statuses = Counter(results(path).values())
    total = sum(statuses.values())
    killed = sum(statuses[status] for status in CAUGHT)
    return {
        "module": path,
        "mutants": total,
        "killed": killed,
        "survived": statuses["survived"],
        "no tests": statuses["no tests"],
        "other": total - killed - statuses["survived"] - statuses["no tests"],
        "score": f"{killed / total:.0%}" if total else "–",
    }


def changed_line(name: str) -> str:
    """A survivor's planted change, as the lines ``mutmut show`` marks with ``+``."""
    command = [sys.executable, "-m", "mutmut", "show", name]
    diff = subprocess.run(command, cwd=ROOT, capture_output=True, text=True).stdout
    added = [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    return " / ".join(added) or "(no diff)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true", help="only read the last run's results in mutants/")
    parser.add_argument("--max-children", type=int, default=None, help="mutants tested at once (default: one a core)")
    parser.add_argument("--survivors", action="store_true", help="list each survivor's changed line")
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    if not args.no_run:
        command = [sys.executable, "-m", "mutmut", "run"]
        command += ["--max-children", str(args.max_children)] if args.max_children else []
        subprocess.run(command, cwd=ROOT, check=True)
    table = pd.DataFrame([score(path) for path in modules()])
    show_table(table, args.csv, "Mutation score per module (killed: a test failed or the mutant hung)")
    if args.survivors:
        for path in modules():
            for name, status in results(path).items():
                if status in ("survived", "no tests"):
                    print(f"{name}: {status}: {changed_line(name)}")


if __name__ == "__main__":
    main()
