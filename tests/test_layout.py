"""The package's layout rules: each method is one folder that does not reach into the other, and the
methods and shared parts never import the tools built around them (experiments, benchmarks,
packaging, the command line)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "anatosynth_components"
TOOLS = {"experiments", "benchmarks", "packaging", "cli"}
METHODS = {"anatomask", "acis"}


def imported_packages(path: Path) -> set[str]:
    """The ``anatosynth_components.<name>`` subpackages that ``path`` imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        modules = []
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        names |= {m.split(".")[1] for m in modules if m.startswith("anatosynth_components.")}
    return names


def package_files(*parts: str) -> list[Path]:
    return sorted((PACKAGE.joinpath(*parts)).rglob("*.py"))


def test_import_scanner_sees_imports():
    assert imported_packages(PACKAGE / "acis" / "trainer.py") >= {"acis", "engines", "errors"}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_method_does_not_import_the_other_method_or_the_tools(method):
    forbidden = (METHODS - {method}) | TOOLS
    offenders = {str(p.relative_to(PACKAGE)): imported_packages(p) & forbidden for p in package_files(method)}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_shared_parts_import_neither_method_nor_tools():
    shared = [p for d in ("data", "metrics", "handlers", "engines", "bundle") for p in package_files(d)]
    shared += [
        PACKAGE / n for n in ("checks.py", "network_size.py", "errors.py", "atomic.py", "visualize.py")
    ]
    offenders = {str(p.relative_to(PACKAGE)): imported_packages(p) & (METHODS | TOOLS) for p in shared}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_old_scattered_packages_are_gone():
    for old in ("networks", "losses", "inferers", "serving", "pseudomask", "refinement", "commands"):
        assert not (PACKAGE / old).exists(), old
