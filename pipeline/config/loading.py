"""Read a params file and turn schema violations into one readable line per problem.

Which schema is the caller's: the whole params.yaml's is put together above the paradigms (:mod:`pipeline.params`).
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


class _RepeatedKey(ValueError):
    """A key given twice in one mapping of a YAML file."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe loading that refuses a key given twice in a mapping, where PyYAML would keep the last one silently."""

    def construct_document(self, node: yaml.Node) -> Any:
        _refuse_repeated_keys(node, "", set())
        return super().construct_document(node)


def _refuse_repeated_keys(node: yaml.Node, key: str, seen: set[int]) -> None:
    """Raise :class:`_RepeatedKey` naming the dotted key and both lines; a node shared by aliases is walked once."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_repeated_keys(item, f"{key}[{i}]", seen)
    elif isinstance(node, yaml.MappingNode):
        lines: dict[tuple[str, str], int] = {}  # by tag and text: 1 and '1' are different keys
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            name = f"{key}.{key_node.value}" if key else key_node.value
            tagged, line = (key_node.tag, key_node.value), key_node.start_mark.line + 1
            if tagged in lines:
                raise _RepeatedKey(f"key '{name}' is given twice (lines {lines[tagged]} and {line})")
            lines[tagged] = line
            _refuse_repeated_keys(value_node, name, seen)


def read_yaml(path: str | Path) -> Any:
    """A params file's tree as written (empty: ``{}``), or a :class:`ConfigError` naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found (run from the project root or pass its path)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        byte = err.object[err.start]
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{byte:02x} at offset {err.start}); save it as UTF-8"
        ) from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except _RepeatedKey as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    return raw if raw is not None else {}


def validated(raw: Any, model: type[ModelT], source: str) -> ModelT:
    """``raw`` (a params tree as read from YAML) checked against ``model``, or a :class:`ConfigError` with one line
    per problem, each naming the key, the value and what is allowed."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level, got {type(raw).__name__}")
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
            item = _list_item(annotation)
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


def _list_item(annotation: Any) -> Any:
    """What a list field holds, through Optional[...]; None for a field that is no list."""
    if typing.get_origin(annotation) is list:
        return typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return next((_list_item(arg) for arg in typing.get_args(annotation) if _list_item(arg) is not None), None)
    return None


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
