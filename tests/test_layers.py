"""The layer contracts (.importlinter, checked by lint-imports) and what import-linter cannot say:
no module imports another package's private (underscore) names."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("slideio", "analysis", "cases", "workers", "viewer", "annotations", "pdl1site")


def private_cross_package_imports(source: str, importer: str) -> list[str]:
    """`from other.module import _name` (or `import other._module`) in `source`, a module of
    package `importer`: function-level imports included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            package = node.module.split(".")[0]
            if package != importer and package in PACKAGES:
                found += [f"{node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
                if any(part.startswith("_") and not part.startswith("__") for part in node.module.split(".")):
                    found.append(node.module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] != importer and parts[0] in PACKAGES and any(
                        p.startswith("_") and not p.startswith("__") for p in parts):
                    found.append(alias.name)
    return found


@pytest.mark.parametrize("source, found", [
    ("def f():\n    from analysis.merge import _points_in_polygon\n", ["analysis.merge._points_in_polygon"]),
    ("from slideio.slidefile import SlideError, _clean\n", ["slideio.slidefile._clean"]),
    ("import analysis._private\n", ["analysis._private"]),
    ("from viewer.services import _label\n", []),  # its own package
    ("from pdl1site import __version__\n", []),  # a dunder is public
    ("from analysis.merge import points_in_polygon\nfrom . import _x\n", []),
])
def test_the_check_finds_private_imports(source, found):
    assert private_cross_package_imports(source, "viewer") == found


def test_no_package_imports_another_packages_private_names():
    offending = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            offending += [f"{path.relative_to(REPO)}: {name}"
                          for name in private_cross_package_imports(path.read_text(), package)]
    assert offending == []
