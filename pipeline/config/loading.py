"""Read params.yaml and turn schema violations into one readable line per problem."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.config.params import Params, params_model
from pipeline.errors import ConfigError

DEFAULT_PARAMS_FILE = Path("params.yaml")


def load_params(path: str | Path = DEFAULT_PARAMS_FILE) -> Params:
    """Read and validate a params file; raise :class:`ConfigError` naming the key on any problem."""
    return parse_params(read_yaml(path), source=str(path))


def read_yaml(path: str | Path) -> Any:
    """A params file's tree as written (empty: ``{}``), or a :class:`ConfigError` naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found (run from the project root or pass its path)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    return raw if raw is not None else {}


def parse_params(raw: Any, source: str = "params") -> Params:
    """Validate a params mapping (as read from YAML)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level, got {type(raw).__name__}")
    model = params_model()
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise ConfigError("\n".join(f"{source}: {line}" for line in describe_errors(err, model))) from None


def describe_errors(err: ValidationError, model: type[BaseModel]) -> list[str]:
    """One line per offending key of ``model`` (the params schema): the key, the value and what is allowed."""
    problems: dict[str, tuple[Any, list[str]]] = {}
    out: list[str] = []
    for problem in err.errors():
        key, parent = _dotted_key(problem["loc"], model)
        if problem["type"] == "extra_forbidden":
            allowed = ", ".join(parent.model_fields) if parent else "none"
            where = key.rpartition(".")[0] or "the top level"
            out.append(f"unknown key '{key}' (value {_show(problem['input'])}); allowed in {where}: {allowed}")
            continue
        message = problem["msg"].replace("Input should be ", "must be ").removeprefix("Value error, ")
        message = message.replace("a valid dictionary or instance of", "a mapping like")
        problems.setdefault(key, (problem["input"], []))[1].append(message)
    for key, (value, messages) in problems.items():
        shown = "" if isinstance(value, dict) else f" = {_show(value)}"
        first, *others = dict.fromkeys(messages)
        alternatives = "".join(f" or {m.removeprefix('must be ')}" for m in others)
        out.append(f"{key}{shown}: {first}{alternatives}" if key else f"{first}{alternatives}")  # a cross-section rule
    return out


def _dotted_key(loc: tuple, root: type[BaseModel]) -> tuple[str, type[BaseModel] | None]:
    """Turn a pydantic location into ``a.b[0].c`` (dropping union-member tags) and its parent section."""
    model: type[BaseModel] | None = root
    parent: type[BaseModel] | None = root
    annotation: Any = None
    key = ""
    for part in loc:
        if isinstance(part, int):
            item = typing.get_args(annotation)[0] if typing.get_origin(annotation) is list else None
            key, model, annotation = f"{key}[{part}]", section_model(item), item
            continue
        if typing.get_origin(annotation) is dict:  # a mapping section such as sweep: {<stage>: ...}
            item = typing.get_args(annotation)[1]
            key, parent, model, annotation = f"{key}.{part}", model, section_model(item), item
            continue
        if model is None and key:
            break  # a union member's tag such as 'int' or "literal['auto']"
        parent = model
        key = f"{key}.{part}" if key else str(part)
        field = model.model_fields.get(part) if model else None
        annotation = field.annotation if field else None
        model = section_model(annotation)
    return key, parent


def section_model(annotation: Any) -> type[BaseModel] | None:
    """The params section (pydantic model) a field holds, through Optional[...] and unions; None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = section_model(arg)
            if found:
                return found
    return None


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."
