"""``--set KEY=VALUE`` overrides of an experiment's configuration, checked against its defaults.

Values are parsed as JSON when they can be (``4``, ``0.5``, ``true``, ``[32,32,32]``, ``null``,
``{"lambda_vgg": 0}``) and kept as strings otherwise.  Nested keys use dots (``network.base_channels``).
A key that the configuration does not have, or a value of another type than the default's, is a
:class:`ConfigError` naming the key, so a typo never silently does nothing.

Example:
    >>> defaults = {"epochs": 8, "net": {"width": 16}, "data": None}
    >>> apply_overrides(defaults, ["epochs=2", "net.width=8", "data=/x"])
    {'epochs': 2, 'net': {'width': 8}, 'data': '/x'}
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

from anatosynth_components.errors import ConfigError


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _compatible(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float))
    if isinstance(default, dict):
        return isinstance(value, dict)  # free-form dicts (bundle overrides) take any keys
    return isinstance(value, type(default))


def apply_overrides(
    config: dict[str, Any], assignments: Sequence[str], free_dicts: Sequence[str] = ()
) -> dict:
    """A copy of ``config`` with every ``KEY=VALUE`` of ``assignments`` applied.

    Args:
        config: the defaults.
        assignments: ``KEY=VALUE`` strings.
        free_dicts: dotted keys of dicts that accept new sub-keys (pass-through options, such as
            the bundle overrides of the ablation, ``"network"``, or ``"synthetic.train_overrides"``).
    """
    out = copy.deepcopy(config)
    for text in assignments:
        key, sep, raw = text.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {text!r}: expected KEY=VALUE")
        parts = key.split(".")
        node = out
        for depth, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[: depth + 1])} is not a group of options")
            node = node[part]
        leaf, value = parts[-1], parse_value(raw)
        free = ".".join(parts[:-1]) in free_dicts
        if leaf not in node and not free:
            raise ConfigError(f"--set {key}: unknown key; the keys here are {sorted(node)}")
        if leaf in node and not _compatible(node[leaf], value):
            raise ConfigError(
                f"--set {key}: expected a value like {json.dumps(node[leaf])}, got {json.dumps(value)}"
            )
        node[leaf] = value
    return out
