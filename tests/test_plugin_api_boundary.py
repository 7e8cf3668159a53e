"""The plugin API boundary, checked on the source: plugins import only ``mediasvc.plugin`` (and their tests
``mediasvc.testing``), the core decodes no media itself (no PyAV), and every public name resolves and is
documented in docs/plugins.md.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import mediasvc.plugin

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_MODULES = {"mediasvc.plugin", "mediasvc.testing"}
PLUGIN_SOURCES = [ROOT / "plugins", ROOT / "tests" / "sample_plugin"]
CORE_SOURCES = [ROOT / "server", ROOT / "jobs"]


def python_files(*folders: Path) -> Iterator[Path]:
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            if "piccolo_migrations" not in path.parts and "__pycache__" not in path.parts:
                yield path


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted module) for every import in the file, ``from a import b`` giving ``a.b`` (b may be a
    module), and ``importlib.import_module("...")`` with a literal name."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Call) and _called_name(node) == "import_module" and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value


def _called_name(call: ast.Call) -> str:
    return getattr(call.func, "attr", None) or getattr(call.func, "id", "")


def is_public(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in PUBLIC_MODULES)


def violations(folders: list[Path], forbidden: re.Pattern[str], allowed=lambda module: False) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line}: {module}" for path in python_files(*folders)
            for line, module in imported_modules(path) if forbidden.match(module) and not allowed(module)]


def test_plugins_import_only_the_public_api():
    found = violations(PLUGIN_SOURCES, re.compile(r"mediasvc(\.|$)"), is_public)
    assert not found, ("plugins may import only mediasvc.plugin (and mediasvc.testing in tests):\n"
                       + "\n".join(found))


def test_the_core_does_not_decode_media_with_pyav():
    found = violations(CORE_SOURCES, re.compile(r"av(\.|$)"))
    assert not found, "the core imports PyAV (media work belongs in a plugin):\n" + "\n".join(found)


def test_the_walk_sees_imports_of_every_form(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import mediasvc.events\nfrom mediasvc import tables, plugin\n"
                      "from mediasvc.plugin import hookimpl\nimport importlib\n"
                      "importlib.import_module('mediasvc.processing')\nfrom . import sibling\n")
    modules = [m for _, m in imported_modules(sample) if m.startswith("mediasvc")]
    private = [m for m in modules if not is_public(m)]
    assert private == ["mediasvc.events", "mediasvc.tables", "mediasvc.processing"]


def test_every_public_name_resolves_and_is_documented():
    reference = (ROOT / "docs" / "plugins.md").read_text().split("\n## Reference", 1)
    assert len(reference) == 2, "docs/plugins.md has no '## Reference' section"
    unresolved = [name for name in mediasvc.plugin.__all__ if getattr(mediasvc.plugin, name, None) is None]
    undocumented = [name for name in mediasvc.plugin.__all__ if f"`{name}`" not in reference[1]]
    assert not unresolved, f"mediasvc.plugin names that do not resolve: {unresolved}"
    assert not undocumented, f"mediasvc.plugin names missing from docs/plugins.md's reference: {undocumented}"
