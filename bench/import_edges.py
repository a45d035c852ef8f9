"""Import edges between the apps and the largest source files, at any commit (issue 17's before/after).

    .venv/bin/python bench/import_edges.py [REV ...]     (default: HEAD; reads git objects, not the tree)

An edge is one import statement in an app package (tests/ and bench/ are not apps) that names another
app package: `import b.x`, `from b.x import y` (a statement naming two apps counts once per app).
Module-level and function-level (inside a def, at any depth) are counted apart. "Up" means the target
sits higher in .importlinter's layer order than the importer (slideio < analysis < cases < workers <
viewer | annotations | integration < the site's wiring pdl1site.urls/api/asgi/routing; the site's
infrastructure, pdl1site.env/settings/rest/..., sits below every app). "Private" means the statement
names another app's private module or name (a segment or imported name starting with one "_").
The largest files are tracked *.py and *.js, vendored builds (static/vendor, node_modules) left out.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from collections import Counter

APPS = ("slideio", "analysis", "cases", "workers", "viewer", "annotations", "integration", "pdl1site")
RANK = {"slideio": 1, "analysis": 2, "cases": 3, "workers": 4, "viewer": 5, "annotations": 5, "integration": 5}
SITE_WIRING = {"pdl1site.urls", "pdl1site.api", "pdl1site.asgi", "pdl1site.routing"}


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def _rank(module: str) -> int:
    app = module.split(".")[0]
    if app == "pdl1site":  # the wiring is the top layer; the rest is infrastructure under every app
        return 6 if any(module == m or module.startswith(m + ".") for m in SITE_WIRING) else 0
    return RANK[app]


def _is_private(parts: list[str]) -> bool:
    return any(p.startswith("_") and not p.startswith("__") for p in parts)


def _statements(tree: ast.AST):
    """(node, inside_function) for every import statement."""
    stack = [(tree, False)]
    while stack:
        node, in_def = stack.pop()
        for child in ast.iter_child_nodes(node):
            inner = in_def or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, in_def
            stack.append((child, inner))


def edges(rev: str) -> list[dict]:
    found = []
    for path in _git("ls-tree", "-r", "--name-only", rev).split():
        app = path.split("/")[0]
        if not path.endswith(".py") or app not in APPS or "/" not in path:
            continue
        source = _git("show", f"{rev}:{path}")
        importer = path[:-3].replace("/", ".").removesuffix(".__init__")
        for node, in_def in _statements(ast.parse(source)):
            if isinstance(node, ast.ImportFrom):
                if node.level or not node.module:
                    continue  # relative: inside its own package
                targets = {node.module: [node.module.split(".") + [a.name]for a in node.names]}
            else:
                targets = {a.name: [a.name.split(".")] for a in node.names}
            seen = set()
            for module, name_paths in targets.items():
                target_app = module.split(".")[0]
                if target_app not in APPS or target_app == app or target_app in seen:
                    continue
                seen.add(target_app)
                found.append({
                    "from": importer, "to": module, "line": node.lineno, "function_level": in_def,
                    "up": _rank(module) > _rank(importer),
                    "private": any(_is_private(p[1:]) for p in name_paths),
                })
    return found


def largest(rev: str, suffix: str, n: int = 10) -> list[tuple[int, str]]:
    sizes = []
    for path in _git("ls-tree", "-r", "--name-only", rev).split():
        if path.endswith(suffix) and "node_modules/" not in path and "/vendor/" not in path:
            sizes.append((_git("show", f"{rev}:{path}").count("\n"), path))
    return sorted(sizes, reverse=True)[:n]


def report(rev: str) -> str:
    found = edges(rev)
    lines = [f"## {rev} ({_git('rev-parse', '--short', rev).strip()})", ""]
    fn = sum(e["function_level"] for e in found)
    lines.append(f"import statements between apps: {len(found)} (module-level {len(found) - fn}, "
                 f"function-level {fn}); pointing up the layer order: {sum(e['up'] for e in found)}; "
                 f"naming another app's private module or name: {sum(e['private'] for e in found)}")
    pairs = Counter((e["from"].split(".")[0], e["to"].split(".")[0]) for e in found)
    lines.append("by pair: " + ", ".join(f"{a}->{b} {c}" for (a, b), c in sorted(pairs.items())))
    for e in found:
        if e["up"] or e["private"]:
            kind = "+".join(k for k in ("up", "private") if e[k])
            where = "function" if e["function_level"] else "module"
            lines.append(f"  {kind}: {e['from']}:{e['line']} -> {e['to']} ({where}-level)")
    for suffix in (".py", ".js"):
        lines.append(f"largest {suffix} files (lines): " + ", ".join(f"{p} {n}" for n, p in largest(rev, suffix)))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    for rev in sys.argv[1:] or ["HEAD"]:
        print(report(rev))
