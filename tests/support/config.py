"""The settings file a test server starts from: TOML written from ``{section: {key: value}}``."""

from __future__ import annotations

import json
from typing import Any


def toml_value(value: Any) -> str:
    """Just enough TOML: strings, numbers, booleans, lists and inline tables of those."""
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
        )
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def to_toml(settings: dict[str, dict[str, Any]]) -> str:
    lines = []
    for section, values in settings.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def merge(settings: dict[str, dict[str, Any]], overrides: dict[str, Any]) -> dict:
    """``overrides`` as {"section.key": value} on top of ``settings`` (which stays as it was)."""
    merged = {section: dict(values) for section, values in settings.items()}
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        merged.setdefault(section, {})[key] = value
    return merged
