"""Typed dataclasses from and to YAML: a strict conversion that names the key at fault (with a
suggestion for a misspelt one), and YAML written back with each field's docstring as a comment.
Knows nothing of skillvet's settings; `skillvet.config` uses it.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import itertools
import textwrap
import types
import typing
from typing import Any, Literal

import yaml

from skillvet.configerror import ConfigError


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass `cls` from a nested dict, checking keys and types on the way down."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = (
                f"; did you mean {prefix}{close[0]}?"
                if close
                else f"; known keys: {', '.join(names)}"
            )
            raise ConfigError(f"unknown key {prefix}{key}{hint}")
    kwargs = {
        name: _convert(hints[name], data[name], f"{prefix}{name}") for name in names if name in data
    }
    try:
        return cls(**kwargs)
    except TypeError as err:  # a dataclass without defaults for some field
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {err}") from err


def _convert(tp: Any, value: Any, key: str) -> Any:
    """`value` read from YAML as the field type `tp`, or a ConfigError naming `key`."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value if value is not None else {}, key + ".")
    if origin in (typing.Union, types.UnionType):
        return _convert_union(tp, value, key)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(
                f"{key}: must be one of {', '.join(map(repr, allowed))}, got {value!r}"
            )
        return value
    if origin in (list, tuple, dict):
        return _convert_container(tp, value, key)
    if tp is Any:
        return value
    if tp in _SCALARS:
        return _SCALARS[tp](value, key)
    raise ConfigError(f"{key}: unsupported config type {tp}")


def _convert_container(tp: Any, value: Any, key: str) -> Any:
    if typing.get_origin(tp) is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{key}: expected a list, got {value!r}")
    (item_tp, *_) = typing.get_args(tp) or (Any,)
    return [_convert(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value)]


def _convert_union(tp: Any, value: Any, key: str) -> Any:
    options = typing.get_args(tp)
    if value is None and type(None) in options:
        return None
    errors = []
    for option in (o for o in options if o is not type(None)):
        try:
            return _convert(option, value, key)
        except ConfigError as err:
            errors.append(str(err))
    raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} fits none of {tp}")


def _to_bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    return value


def _to_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    return value


def _to_float(value: Any, key: str) -> float:
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    return float(value)


def _to_str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


_SCALARS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}


def describe(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass `cls`, read from its source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for stmt, nxt in itertools.pairwise(body):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def to_yaml(cfg: Any, comments: bool = True) -> str:
    """The resolved config as YAML; with `comments`, each key carries its field docstring."""
    if not comments:
        return yaml.safe_dump(to_dict(cfg), sort_keys=False)
    lines: list[str] = []
    _emit(cfg, 0, lines)
    return "\n".join(lines) + "\n"


def _emit(obj: Any, indent: int, lines: list[str]) -> None:
    docs = describe(type(obj))
    pad = "  " * indent
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        doc = docs.get(f.name, "")
        if dataclasses.is_dataclass(value):
            lines.append(f"{pad}{f.name}:" + (f"  # {doc}" if doc else ""))
            _emit(value, indent + 1, lines)
        else:
            dumped = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
            dumped = dumped.removesuffix("\n...").removesuffix("...").strip()
            lines.append(f"{pad}{f.name}: {dumped}" + (f"  # {doc}" if doc else ""))
