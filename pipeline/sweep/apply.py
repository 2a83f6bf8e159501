"""Put a sweep's best params where the pipeline reads them.

``--apply`` writes them into params.yaml, keeping its comments, order and styles (ruamel.yaml's
round trip), so the next ``dvc repro`` re-runs exactly the stages that read them. Without it,
the equivalent ``dvc exp run -S ...`` line tries them as a DVC experiment instead.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from pipeline.io import atomic_path
from pipeline.sweep.space import set_dotted


def apply_to_params(path: Path, values: dict[str, Any]) -> None:
    yaml = YAML()  # round trip: comments, key order and flow styles survive
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)  # params.yaml's style: "    - item" under its key
    yaml.representer.add_representer(type(None), _null)  # keep "null", not an empty value
    tree = yaml.load(Path(path).read_text())
    for key, value in values.items():
        set_dotted(tree, key, _flow(value) if isinstance(value, list) else value, CommentedMap)
    with atomic_path(path) as tmp, open(tmp, "w") as out:
        yaml.dump(tree, out)


def exp_run_command(values: dict[str, Any]) -> str:
    return "dvc exp run " + " ".join(f"-S {shlex.quote(f'{key}={json.dumps(value)}')}" for key, value in values.items())


def _flow(items: list) -> CommentedSeq:
    """A list written on one line, ``[64, 128]``, as params.yaml writes its lists."""
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def _null(representer, _value):
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")
