"""Params by dotted key (``finetune.lora.r``), and putting them where the pipeline reads them.

A sweep's best params and a profile's values are dotted keys. ``apply_to_params`` writes them
into params.yaml, keeping its comments, order and styles (ruamel.yaml's round trip), so the next
``dvc repro`` re-runs exactly the stages that read them; ``exp_run_command`` is the equivalent
``dvc exp run -S ...`` line, to try them as a DVC experiment instead.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Callable

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from pipeline.io import atomic_path


def set_dotted(tree: dict, key: str, value: Any, new_mapping: Callable[[], dict] = dict) -> None:
    """``tree["a"]["b"]["c"] = value`` for ``a.b.c``, making missing (or null) parents with ``new_mapping``."""
    node = tree
    *parents, last = key.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = new_mapping()
        node = node[part]
    node[last] = value


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay whole values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


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
