"""The model zoo's rules for a bundle folder, checked without running anything heavy.

- ``LICENSE`` and ``configs/metadata.json`` exist; the metadata's ``version`` is a key of its
  ``changelog``; it validates against the zoo's metadata schema (``monai.bundle.verify_metadata``;
  the package ships the schema, :data:`META_SCHEMA`, and a ``schema`` argument replaces it);
  ``required_packages_version`` pins ``anatosynth-components``;
- ``configs/inference.json`` has ``bundle_root``, ``device``, ``network_def``, ``inferer``,
  ``output_dir``, ``preprocessing``, ``postprocessing``;
- ``configs/train.json`` has ``bundle_root``, ``device``, ``dataset_dir``, ``train#trainer``,
  ``train#trainer#max_epochs``, ``train#dataset#data``, ``train#handlers``, and ``val_interval``
  when one of ``train#handlers`` is a validation handler.

Example::

    problems = bundle_problems("bundles/anatomask_oasis")
    # [] when the bundle conforms, else messages naming the file and the key

>>> META_SCHEMA.name, META_SCHEMA.is_file()
('meta_schema_20240725.json', True)
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from anatosynth_components.errors import ConfigError

INFERENCE_KEYS = (
    "bundle_root",
    "device",
    "network_def",
    "inferer",
    "output_dir",
    "preprocessing",
    "postprocessing",
)
TRAIN_KEYS = (
    "bundle_root",
    "device",
    "dataset_dir",
    "train#trainer",
    "train#trainer#max_epochs",
    "train#dataset#data",
    "train#handlers",
)
PACKAGE = "anatosynth-components"
#: the model zoo's metadata schema, shipped inside the package (package data of the wheel)
META_SCHEMA = Path(__file__).resolve().parent / "schemas" / "meta_schema_20240725.json"


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None


def has_id(config: Any, id_: str) -> bool:
    """Whether the ``#``-separated id exists in a raw (unparsed) config."""
    node = config
    for part in id_.split("#"):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def _uses_validation(handlers: Any) -> bool:
    return isinstance(handlers, list) and any(
        isinstance(h, dict) and "ValidationHandler" in str(h.get("_target_", "")) for h in handlers
    )


def metadata_problems(meta_file: Path, schema: str | os.PathLike | None = None) -> list[str]:
    """Problems of ``configs/metadata.json`` (see the module docstring); ``schema`` None validates
    against the shipped :data:`META_SCHEMA`."""
    schema = META_SCHEMA if schema is None else Path(schema)
    if not schema.is_file():
        raise ConfigError(f"{schema}: metadata schema file not found")
    meta = read_json(meta_file)
    problems = []
    version = meta.get("version")
    if not version:
        problems.append(f"{meta_file}: no 'version'")
    elif version not in meta.get("changelog", {}):
        problems.append(f"{meta_file}: version {version} is not a key of 'changelog'")
    if PACKAGE not in meta.get("required_packages_version", {}):
        problems.append(f"{meta_file}: 'required_packages_version' does not pin {PACKAGE}")
    from monai.bundle import verify_metadata

    try:
        with warnings.catch_warnings():  # the schema is a local file (checked above): nothing is downloaded
            warnings.filterwarnings("ignore", message="No hash value provided")
            verify_metadata(meta_file=str(meta_file), filepath=str(schema))
    except Exception as err:  # jsonschema.ValidationError and friends
        problems.append(f"{meta_file}: does not validate against {schema}: {str(err).splitlines()[0]}")
    return problems


def environment_mismatches(meta: Mapping[str, Any]) -> list[str]:
    """Versions pinned by the metadata that differ from the running environment's (for a warning: a
    bundle is published with the versions it was tested with)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = {"monai": meta.get("monai_version"), "torch": meta.get("pytorch_version")}
    pins |= {"numpy": meta.get("numpy_version"), **meta.get("required_packages_version", {})}
    out = []
    for name, pinned in pins.items():
        try:
            have = version(name).split("+")[0]
        except PackageNotFoundError:
            have = "not installed"
        if pinned is not None and str(pinned) != have:
            out.append(f"{name}: metadata pins {pinned}, this environment has {have}")
    return out


def bundle_problems(bundle_dir: str | os.PathLike, schema: str | os.PathLike | None = None) -> list[str]:
    """Every rule of the module docstring that ``bundle_dir`` breaks, as messages (empty: conforms);
    ``schema`` None validates the metadata against the shipped :data:`META_SCHEMA`."""
    root = Path(bundle_dir)
    problems = [f"{root / name}: missing" for name in ("LICENSE",) if not (root / name).is_file()]
    meta_file = root / "configs" / "metadata.json"
    if not meta_file.is_file():
        return [*problems, f"{meta_file}: missing"]
    problems += metadata_problems(meta_file, schema)
    for name, keys in (("inference", INFERENCE_KEYS), ("train", TRAIN_KEYS)):
        path = root / "configs" / f"{name}.json"
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        config = read_json(path)
        problems += [f"{path}: no key {key!r}" for key in keys if not has_id(config, key)]
        if name == "train" and _uses_validation(config.get("train", {}).get("handlers")):
            if "val_interval" not in config:
                problems.append(f"{path}: train#handlers validate but there is no 'val_interval'")
    return problems
