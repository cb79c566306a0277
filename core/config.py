"""Config dataclasses from plain mappings (release JSON, recipe YAML): one builder for every config. Each
model keeps only its own `migrate_config`, the one place that knows its old formats."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def config_from_dict(cls: type[T], values: dict[str, Any], what: str) -> T:
    """Build config dataclass `cls` from a mapping: a key `cls` does not have is an error naming `what`; lists
    become tuples where the field is a tuple, integers floats where it is a float, and a field that is itself a
    config dataclass is built from its mapping the same way."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - fields
    if unknown:
        raise ValueError(f"unknown {what} keys: {sorted(unknown)}")
    hints = typing.get_type_hints(cls)
    built = {}
    for key, value in values.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = config_from_dict(hint, value, f"{what} {key}")
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        elif hint is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        built[key] = value
    return cls(**built)
