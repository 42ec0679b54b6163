"""The two layers stay apart: no math module imports the config-driven application layer."""

from __future__ import annotations

import ast
from pathlib import Path

import difflab

PACKAGE = Path(difflab.__file__).parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_math_module_imports_the_app_layer():
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            n for n in _imports(path) if n.startswith("difflab.app")
        )
        for path in PACKAGE.rglob("*.py")
        if "app" not in path.relative_to(PACKAGE).parts and path.name != "__main__.py"
    }
    assert not {k: v for k, v in offenders.items() if v}
