"""The shape of the code (issue 15): the import graph of server/ and worker/
has no cycle, no module is past MAX_MODULE_LINES, the server never imports
the worker package (the worker's `rota server` imports server/__main__, not
the other way), the in-job SDK and the job
supervisor's program import only the standard library, no worker module
imports a name it does not use (a re-export), and tests reach the worker's
fakes and knobs through seams it hands them, never by patching its modules.

Read from the source with `ast`: nothing here is imported or run.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("server", "worker")
# About 500 lines: past it a module holds more than one idea (issue 15, item 2).
MAX_MODULE_LINES = 500
# Run outside rota: copied next to a job (the SDK), or run by path with
# `python -I -S` (the supervisor's program).
STDLIB_ONLY = {"worker.sdk": ROOT / "worker" / "sdk.py", "worker.supervise": ROOT / "worker" / "supervise.py"}


def modules(packages=PACKAGES) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = modules()


def imported(name: str, path: Path, known: dict[str, Path] | None = None) -> set[str]:
    """The modules of `known` (server/ and worker/) that `name` imports,
    anywhere in it (function-level imports included: a cycle through one is
    still a cycle)."""
    known = MODULES if known is None else known
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if is_package else name.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    if is_package:  # a package importing its own submodules is how packages work
        found = {other for other in found if not other.startswith(name + ".")}
    return found


GRAPH = {name: imported(name, path) for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1 or node in graph[node]:
                found.append(sorted(component))

    recursion = sys.getrecursionlimit()
    sys.setrecursionlimit(max(recursion, 10 * len(graph)))
    try:
        for node in sorted(graph):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(recursion)
    return found


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_walk_sees_every_kind_of_import(tmp_path):
    files = {
        "p/__init__.py": "from . import a\n",  # a package's own submodule: not an edge
        "p/a.py": "import p.b\nfrom .c import thing\n",
        "p/b.py": "def later():\n    from p import d\n",  # at call time
        "p/c.py": "from ..q import x\n",
        "p/d.py": "from p.c import deep as name\n",
        "q.py": "import os\n",
    }
    known = {}
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        known[rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__")] = path
    graph = {name: imported(name, path, known) for name, path in known.items()}
    assert graph == {"p": set(), "p.a": {"p.b", "p.c"}, "p.b": {"p", "p.d"}, "p.c": {"q"}, "p.d": {"p.c"},
                     "q": set()}


def test_no_import_cycle_in_server_or_worker():
    found = cycles(GRAPH)
    assert not found, "import cycles:\n" + "\n".join("  " + " -> ".join(cycle) for cycle in found)


def test_no_module_is_over_the_line_limit():
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    over = sorted((lines, name) for name, lines in sizes.items() if lines > MAX_MODULE_LINES)
    assert not over, f"modules over {MAX_MODULE_LINES} lines (split where their ideas part):\n" + "\n".join(
        f"  {name}: {lines}" for lines, name in reversed(over))


def test_the_server_does_not_import_the_worker_package():
    # The worker may import server.models, server.expressions and
    # server.terminal (one definition of the wire types, the expression
    # language and of what makes job-written text inert); the server
    # needs nothing of the worker's.
    reaching = {name: sorted(m for m in deps if m.split(".")[0] == "worker") for name, deps in GRAPH.items()
                if name.split(".")[0] == "server"}
    reaching = {name: deps for name, deps in reaching.items() if deps}
    assert not reaching, f"server modules importing the worker package: {reaching}"


def test_the_sdk_and_the_supervisor_program_import_only_the_standard_library():
    for name, path in STDLIB_ONLY.items():
        tops = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                tops |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{name}: a relative import"
                tops.add((node.module or "").split(".")[0])
        outside = sorted(tops - set(sys.stdlib_module_names))
        assert not outside, f"{name} imports {outside}, which are not the standard library"


def _unused_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    bound: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    continue
                local = alias.asname or alias.name.split(".")[0]
                if not (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
                    bound.setdefault(local, node.lineno)
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    # a name in a string annotation ("argparse._SubParsersAction[...]") or in
    # __all__ is used; one in a docstring is not
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            try:
                expression = ast.parse(node.value.strip(), mode="eval")
            except SyntaxError:
                continue
            used |= {inner.id for inner in ast.walk(expression) if isinstance(inner, ast.Name)}
    return [f"{name} (line {line})" for name, line in sorted(bound.items()) if name not in used]


def test_no_worker_module_imports_a_name_it_does_not_use():
    # An import kept only so that others (tests) find the name here is a
    # re-export: the name belongs where it is defined.
    unused = {name: found for name, path in MODULES.items()
              if name.split(".")[0] == "worker" and (found := _unused_imports(path))}
    assert not unused, f"imported and never used (re-exports): {unused}"


def test_the_unused_import_check_sees_one():
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.py"
        path.write_text("from os import path, sep  # noqa: F401\nimport json\n\nprint(json.dumps(sep))\n")
        assert _unused_imports(path) == ["path (line 1)"]


def _worker_module_names(tree: ast.Module) -> set[str]:
    """The names a test file binds to modules of the worker package."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "worker":
                    names.add(alias.asname or "worker")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "worker":
            for alias in node.names:
                if f"{node.module}.{alias.name}" in MODULES:
                    names.add(alias.asname or alias.name)
    return names


def _patches_of_worker_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    modules_here = _worker_module_names(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
            continue
        target = node.args[0]
        if node.func.attr in ("setattr", "delattr"):
            root = target
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in modules_here:
                found.append(f"line {node.lineno}: {ast.unparse(node)[:100]}")
            elif isinstance(target, ast.Constant) and str(target.value).startswith("worker."):
                found.append(f"line {node.lineno}: {ast.unparse(node)[:100]}")
        elif node.func.attr == "patch" and isinstance(target, ast.Constant) and str(target.value).startswith("worker."):
            found.append(f"line {node.lineno}: {ast.unparse(node)[:100]}")
    return found


def test_tests_reach_the_worker_through_seams_not_by_patching_its_modules():
    patched = {path.name: found for path in sorted((ROOT / "tests").glob("*.py"))
               if (found := _patches_of_worker_modules(path))}
    assert not patched, f"tests patching worker modules (hand in a client factory or a setting instead): {patched}"


def test_the_patch_check_sees_one():
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.py"
        path.write_text("import os\nfrom worker.cli import main as cli\n\n"
                        "def test(monkeypatch):\n    monkeypatch.setattr(cli, 'Client', None)\n"
                        "    monkeypatch.setattr(os, 'geteuid', lambda: 0)\n")
        assert _patches_of_worker_modules(path) == ["line 5: monkeypatch.setattr(cli, 'Client', None)"]
