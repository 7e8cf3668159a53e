"""The core's import graph keeps its layers (docs/architecture.md, "Layering rules").

Every ``.py`` file under ``server/`` (the package ``mediasvc``) and ``jobs/`` (``mediasvc.jobs``) is parsed, not
imported. An edge A → B is any import in A that names B, at any level (function bodies included: a deferred
import is still a dependency), except under ``if TYPE_CHECKING:``. ``from mediasvc.x import y`` names
``mediasvc.x.y`` when that is a module, else ``mediasvc.x``; relative imports resolve against A's package;
``importlib.import_module("mediasvc.…")`` with a literal name counts too. Importing ``mediasvc.a.b`` is an edge to
``mediasvc.a.b`` only (not to the package ``mediasvc.a`` that Python also runs).
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"mediasvc": ROOT / "server", "mediasvc.jobs": ROOT / "jobs"}  # package name → folder
MAX_LINES = 400
LONG_MODULE_REASON = "Longer than 400 lines because"
ONLY_JOBS_IMPORTER = "mediasvc.cli"  # `mediasvc worker` / `mediasvc dev` wire the worker; nothing else may
WEB_LAYER = ("mediasvc.api", "mediasvc.delivery", "mediasvc.dashboard")  # HTTP: routes, controllers, views
ENTRY_POINTS = {"mediasvc.app", "mediasvc.asgi", "mediasvc.cli", "mediasvc.testing"}  # build or run the app


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    imports: dict[str, int] = field(default_factory=dict)  # imported name → first line that imports it


def _module_name(package: str, folder: Path, path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(folder).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join([package, *parts]), is_package


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, skipping the bodies of ``if TYPE_CHECKING:`` (their ``else`` runs, so it counts)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _imported_names(module: Module, tree: ast.AST) -> Iterator[tuple[str, int]]:
    """(dotted name, line) for each import; ``from X import y`` yields ``X.y`` and ``X`` joined by a NUL (the
    resolver picks ``X.y`` when it is a module)."""
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                yield f"{source}.{alias.name}\0{source}", node.lineno
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.args[0].value, node.lineno


def scan(folders: dict[str, Path]) -> dict[str, Module]:
    """Every module under ``folders`` (package name → folder) with what it imports."""
    modules: dict[str, Module] = {}
    for package, folder in folders.items():
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            name, is_package = _module_name(package, folder, path)
            modules[name] = Module(name, path, is_package)
    for module in modules.values():
        tree = ast.parse(module.path.read_text(encoding="utf-8"), filename=str(module.path))
        for raw, line in _imported_names(module, tree):
            named, _, source = raw.partition("\0")  # ``X.y`` resolves to X.y if a module, else to X
            module.imports.setdefault(_resolve(named, modules) or source or named, line)
    return modules


@cache
def core_modules() -> dict[str, Module]:
    return scan(FOLDERS)


def _resolve(name: str, modules: dict[str, Module]) -> str | None:
    """The core module ``name`` refers to (itself, or its nearest enclosing module); None outside the core."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(modules: dict[str, Module] | None = None) -> dict[str, set[str]]:
    modules = core_modules() if modules is None else modules
    return {name: {target for target in module.imports if target in modules and target != name}
            for name, module in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def a_cycle(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    """One concrete cycle inside a strongly connected component, as a path that ends where it starts."""
    inside = set(members)
    start = members[0]
    paths = {start: [start]}
    queue = [start]
    while queue:  # breadth-first: the shortest way back to ``start``
        node = queue.pop(0)
        for child in sorted(graph[node] & inside):
            if child == start:
                return [*paths[node], start]
            if child not in paths:
                paths[child] = [*paths[node], child]
                queue.append(child)
    return members  # unreachable for a real component


def _where(importer: str, target: str) -> str:
    module = core_modules()[importer]
    return f"{module.path.relative_to(ROOT)}:{module.imports[target]} ({importer} → {target})"


def _docstring(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""


# --- the rules --------------------------------------------------------------------------------------------------


def test_the_graph_sees_the_core():
    graph = import_graph()
    assert {"mediasvc.app", "mediasvc.cli", "mediasvc.jobs.worker", "mediasvc.api.media"} <= set(graph)
    assert "mediasvc.settings" in graph["mediasvc.app"]
    assert "mediasvc.worker_options" in graph["mediasvc.jobs.worker"]


def test_no_import_cycles():
    graph = import_graph()
    cycles = [a_cycle(graph, members) for members in strongly_connected(graph) if len(members) > 1]
    report = "\n".join(
        "  " + " → ".join(cycle) + "\n" + "\n".join(f"    {_where(a, b)}" for a, b in itertools.pairwise(cycle))
        for cycle in cycles)
    assert not cycles, f"import cycles between core modules:\n{report}"


def test_only_the_cli_imports_the_worker_wiring():
    offenders = [_where(name, target) for name, targets in import_graph().items()
                 if name != ONLY_JOBS_IMPORTER and not name.startswith("mediasvc.jobs")
                 for target in targets if target == "mediasvc.jobs" or target.startswith("mediasvc.jobs.")]
    assert not offenders, "only mediasvc.cli may import mediasvc.jobs:\n  " + "\n  ".join(offenders)


def test_api_and_delivery_do_not_import_each_other():
    def layer(name: str) -> str | None:
        return next((top for top in ("mediasvc.api", "mediasvc.delivery")
                     if name == top or name.startswith(top + ".")), None)

    offenders = [_where(name, target) for name, targets in import_graph().items()
                 for target in targets if layer(name) and layer(target) and layer(name) != layer(target)]
    assert not offenders, ("mediasvc.api and mediasvc.delivery share code through a lower module, never "
                           "each other:\n  " + "\n  ".join(offenders))


def test_only_entry_points_import_the_web_layer():
    """Services, ingest, processing, tables, storage, queue and events never import the HTTP layer above them."""

    def in_web_layer(name: str) -> bool:
        return any(name == top or name.startswith(top + ".") for top in WEB_LAYER)

    offenders = [_where(name, target) for name, targets in import_graph().items()
                 if not in_web_layer(name) and name not in ENTRY_POINTS
                 for target in targets if in_web_layer(target)]
    assert not offenders, ("only the web layer itself and the entry points (" + ", ".join(sorted(ENTRY_POINTS))
                           + ") import mediasvc.api / .delivery / .dashboard:\n  " + "\n  ".join(offenders))


def test_the_core_imports_no_plugin():
    offenders = [f"{module.path.relative_to(ROOT)}:{line} imports {target}"
                 for module in core_modules().values() for target, line in module.imports.items()
                 if target.split(".")[0].startswith("mediasvc_")]
    assert not offenders, "the core must not import a plugin package:\n  " + "\n  ".join(offenders)


def test_modules_are_small_or_say_why():
    too_long = []
    for module in core_modules().values():
        if "migrations" in module.path.parts:
            continue
        lines = len(module.path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and LONG_MODULE_REASON not in _docstring(module.path):
            too_long.append(f"{module.path.relative_to(ROOT)}: {lines} lines")
    assert not too_long, (f"modules over {MAX_LINES} lines (split by concern, or say "
                          f"'{LONG_MODULE_REASON} …' in the docstring):\n  " + "\n  ".join(too_long))


# --- the checker checks itself ----------------------------------------------------------------------------------


def test_cycles_are_found_and_reported_as_a_path():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    components = [c for c in strongly_connected(graph) if len(c) > 1]
    assert components == [["a", "b", "c"]]
    assert a_cycle(graph, components[0]) == ["a", "b", "c", "a"]


def test_type_checking_imports_and_relative_imports(tmp_path):
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "from ..top import name\n"
        "if TYPE_CHECKING:\n"
        "    from mediasvc.hidden import X\n"
        "else:\n"
        "    import mediasvc.shown\n"
        "def later():\n"
        "    from mediasvc.deferred import y\n"
    )
    module = Module("mediasvc.pkg.mod", tmp_path / "mod.py", is_package=False)
    names = {raw for raw, _ in _imported_names(module, ast.parse(source))}
    assert "mediasvc.pkg.sibling\0mediasvc.pkg" in names
    assert "mediasvc.top.name\0mediasvc.top" in names
    assert "mediasvc.shown" in names and "mediasvc.deferred.y\0mediasvc.deferred" in names
    assert not any("hidden" in name for name in names)


def test_a_cycle_through_a_deferred_import_is_found_and_one_under_type_checking_is_not(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def later():\n    from .. import c\n")
    (package / "c.py").write_text("import pkg.a\n")
    (package / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n")
    (package / "e.py").write_text("import importlib\nimportlib.import_module('pkg.d')\nfrom pkg.d import thing\n")
    graph = import_graph(scan({"pkg": package}))
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.c"} and graph["pkg.c"] == {"pkg.a"}
    assert graph["pkg.d"] == set() and graph["pkg.e"] == {"pkg.d"}
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    assert cycles == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    assert a_cycle(graph, cycles[0]) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
