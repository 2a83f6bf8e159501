"""``python -m pipeline.tidy``: clean up after killed stages, before ``dvc repro`` (``make run`` runs it first).

A stage killed with ``kill -9`` leaves its MLflow runs RUNNING and its temporary outputs on disk. A stage cleans up
both when it starts, but ``dvc repro`` does not start one that it finds in its run cache ("Stage 'federated' is
cached - skipping run"), so nothing else would. This reads params.yaml, opens the tracking store (which marks KILLED
the RUNNING runs of dead processes on this host, in one line) and removes every abandoned temporary output
(:mod:`pipeline.leftovers`), one line for each; nothing to say when all is clean.
"""

from __future__ import annotations

from pipeline.cli import ArgumentParser, cli_entry
from pipeline.leftovers import remove_abandoned_outputs, removed_line
from pipeline.params import load_params
from pipeline.tracking.store import open_store


@cli_entry
def main() -> None:
    ArgumentParser(prog="python -m pipeline.tidy", description=__doc__.split("\n\n")[0]).parse_args()
    params = load_params()
    open_store(params.tracking)
    for leftover in remove_abandoned_outputs():
        print(removed_line(leftover))


if __name__ == "__main__":
    main()
