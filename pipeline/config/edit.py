"""Params by dotted key (``finetune.lora.r``), and putting them where the pipeline reads them.

A sweep's best params and a profile's values are dotted keys. ``apply_to_params`` writes them
into params.yaml, keeping its comments, order and styles (ruamel.yaml's round trip), so the next
``dvc repro`` re-runs exactly the stages that read them; ``exp_run_command`` is the equivalent
``dvc exp run -S ...`` line, to try them as a DVC experiment instead. DVC reads each ``-S`` in Hydra's override
grammar: ``key=value`` changes a key params.yaml holds, and it refuses that form for a key the file lacks ("Could not
override"), which must be added as ``+key=value``.
"""

from __future__ import annotations

import json
import re
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


def has_dotted(tree: Any, key: str) -> bool:
    """Whether ``tree`` holds ``a.b.c`` (its value may be null)."""
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def exp_run_command(values: dict[str, Any], params: dict) -> str:
    """The ``dvc exp run`` line setting ``values`` on ``params`` (params.yaml's tree as read), one shell word per
    ``-S`` (quoted where the shell would split or expand it): ``key=value`` for a key the file holds, ``+key=value``
    for one it lacks."""
    overrides = (f"{'' if has_dotted(params, key) else '+'}{key}={_hydra(value)}" for key, value in values.items())
    return "dvc exp run " + " ".join(f"-S {shlex.quote(override)}" for override in overrides)


def _hydra(value: Any) -> str:
    """``value`` as Hydra's grammar reads it back with its type: numbers, booleans and null as in JSON, lists of
    them, and every string quoted (``"32"`` stays text, ``"null"`` too)."""
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_hydra(item) for item in value) + "]"
    return json.dumps(value)


def _quoted(text: str) -> str:
    """A Hydra quoted string: a quote escaped, and the backslashes before it or the end doubled (others are kept as
    they are); ``${`` escaped, or OmegaConf would resolve it as an interpolation."""
    escaped = re.sub(r'(\\*)("|$)', lambda m: m.group(1) * 2 + ('\\"' if m.group(2) else ""), text)
    return '"' + escaped.replace("${", "\\${") + '"'


def _flow(items: list) -> CommentedSeq:
    """A list written on one line, ``[64, 128]``, as params.yaml writes its lists."""
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def _null(representer, _value):
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")
