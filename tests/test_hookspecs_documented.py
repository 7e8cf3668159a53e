"""Every hook spec has a docstring, an entry in the README's hook reference, and a test_hook_<name>."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from mediasvc import hookspecs

ROOT = Path(__file__).resolve().parent.parent
SPECS = [
    name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(fn, "mediasvc_spec")
]


def test_there_are_hook_specs():
    assert {"register_processors", "register_storage_backends", "startup"} <= set(SPECS)


def readme_hook_section() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Plugin hooks$(.*?)^## ", text, re.S | re.M)
    assert match, "README.md needs a '## Plugin hooks' section"
    return match.group(1)


def hook_tests() -> set[str]:
    tree = ast.parse((ROOT / "tests" / "test_hooks.py").read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


@pytest.mark.parametrize("name", SPECS)
def test_hook_is_documented_and_tested(name):
    spec = getattr(hookspecs, name)
    assert inspect.getdoc(spec), f"hook {name} has no docstring"
    assert f"`{name}" in readme_hook_section(), f"hook {name} is missing from README.md '## Plugin hooks'"
    assert f"test_hook_{name}" in hook_tests(), f"tests/test_hooks.py has no test_hook_{name}"


def test_no_hook_is_firstresult():
    # an async firstresult hook would always "win" with a coroutine; we have none at all
    for name in SPECS:
        assert not getattr(hookspecs, name).mediasvc_spec.get("firstresult")
