"""docs/plugins.md cannot drift from tests/sample_plugin: its code blocks are the sample's files, its settings
load, and the `mediasvc plugins` line it shows is what the CLI prints. (The sample's own tests, in
tests/sample_plugin/tests, are collected by this suite: testpaths is "tests".)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from mediasvc.plugins import PluginHost
from mediasvc.settings import load_settings
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "plugins.md"
SAMPLE = ROOT / "tests" / "sample_plugin"
FENCE = re.compile(r"^```(\w+)(?: (\S+))?\n(.*?)^```$", re.S | re.M)
BUILD_LEFTOVERS = ("__pycache__", ".pytest_cache", ".egg-info", ".pyc")


def blocks() -> list[tuple[str, str, str]]:
    """(language, tag, text) of every fenced block: the tag is ``file=<path in the sample>`` or a word."""
    return [(m[1], m[2] or "", m[3]) for m in FENCE.finditer(DOC.read_text())]


def sample_files() -> set[str]:
    return {str(p.relative_to(SAMPLE)) for p in SAMPLE.rglob("*")
            if p.is_file() and not any(part in str(p) for part in BUILD_LEFTOVERS)}


def test_the_tutorial_shows_every_file_of_the_sample_exactly():
    shown = {tag.removeprefix("file="): text for _, tag, text in blocks() if tag.startswith("file=")}
    assert set(shown) == sample_files(), "docs/plugins.md and tests/sample_plugin list different files"
    differ = [name for name, text in shown.items() if (SAMPLE / name).read_text() != text]
    assert not differ, f"docs/plugins.md shows other code than tests/sample_plugin for: {differ}"


def test_the_tutorial_profile_loads_and_its_steps_are_installed(tmp_path, sample_plugin_installed):
    (settings_block,) = [text for lang, tag, text in blocks() if (lang, tag) == ("toml", "settings")]
    config = tmp_path / "mediasvc.toml"
    config.write_text(settings_block)
    settings = load_settings(env={}, toml_path=config, data_dir=str(tmp_path), secret_key="x")
    PluginHost(settings).validate()  # fails naming the step if a listed processor is not installed
    assert settings.profiles["podcast"].steps[-2:] == ["sample_checksum", "sample_waveform"]


def test_the_plugins_line_shown_is_what_the_cli_prints(sample_plugin_installed):
    shown = next(line for line in DOC.read_text().splitlines() if re.match(r"sample +\d", line))
    listed = run_cli("plugins")
    assert listed.returncode == 0, listed.stderr
    printed = next(line for line in listed.stdout.splitlines() if line.startswith("sample "))
    assert shown.split() == printed.split()


def test_the_sample_tests_run_in_this_suite():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    sample_tests = SAMPLE / "tests" / "test_mediasvc_sample.py"
    assert "tests" in config["testpaths"] and "sample_plugin" not in config.get("norecursedirs", [])
    assert 'pytest_plugins = ["mediasvc.testing"]' in sample_tests.read_text()  # the kit, in this suite too
