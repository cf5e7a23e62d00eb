"""Build the ``anatosynth-components`` wheel that a bundle's metadata pins.

``configs/metadata.json`` pins ``required_packages_version["anatosynth-components"]``; a published
bundle is only usable with exactly that release, so packaging builds it from the source checkout
(``pip wheel --no-deps --no-build-isolation`` on a clean copy of the package and ``pyproject.toml``:
no index access, the build backend of the running environment) and refuses a checkout whose
version differs from the pin.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from anatosynth_components.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib  # type: ignore[no-redef]

PROJECT = "anatosynth-components"
PACKAGE_DIR = "anatosynth_components"
#: what pyproject.toml needs besides the package (readme, license)
SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE")


def source_root() -> Path:
    """The repository checkout this package runs from (an editable install: ``pyproject.toml`` beside
    the package folder); an installed wheel has none, and then the wheel cannot be rebuilt."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise ConfigError(
            f"{root}: no pyproject.toml; building the {PROJECT} wheel needs a source checkout "
            "(pip install -e <checkout>), not an installed wheel; pass --no-wheel to package the bundle "
            "without it"
        )
    return root


def project_version(root: str | os.PathLike) -> str:
    with open(Path(root) / "pyproject.toml", "rb") as fh:
        project = tomllib.load(fh)["project"]
    if project.get("name") != PROJECT:
        raise ConfigError(f"{root}/pyproject.toml: project {project.get('name')!r} is not {PROJECT}")
    return str(project["version"])


def wheel_source(version: str, root: str | os.PathLike | None = None) -> Path:
    """The source tree to build the pinned wheel from: ``root`` (default: this checkout), checked to be
    at ``version``.  Raises ``ConfigError`` when there is no checkout or its version differs."""
    src = Path(root) if root is not None else source_root()
    have = project_version(src)
    if have != version:
        raise ConfigError(
            f"metadata pins {PROJECT} {version} but {src}/pyproject.toml is version {have}: "
            "update required_packages_version or check out that release"
        )
    return src


def build_wheel(out_dir: str | os.PathLike, version: str, root: str | os.PathLike | None = None) -> Path:
    """Build the wheel of ``root`` (default: this checkout) into ``out_dir``; its version must be ``version``.

    Returns the wheel's path.  Raises ``ConfigError`` on a version mismatch (:func:`wheel_source`) and
    when pip fails (with the end of its output).
    """
    src = wheel_source(version, root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        # build from a clean copy: setuptools' in-tree build/ would keep stale modules between builds
        tree = Path(tmp) / "src"
        shutil.copytree(src / PACKAGE_DIR, tree / PACKAGE_DIR, ignore=shutil.ignore_patterns("__pycache__"))
        for name in SOURCE_FILES:
            shutil.copy2(src / name, tree / name)
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
               "--disable-pip-version-check", "-w", tmp, str(tree)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        wheels = list(Path(tmp).glob("anatosynth_components-*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise ConfigError(f"building the {PROJECT} wheel failed ({' '.join(cmd)}):\n{tail}")
        if not wheels[0].name.startswith(f"anatosynth_components-{version}-"):
            raise ConfigError(f"pip built {wheels[0].name}, expected version {version}")
        target = out / wheels[0].name
        os.replace(wheels[0], target)
    return target
