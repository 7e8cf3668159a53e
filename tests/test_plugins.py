"""Plugin discovery by entry point, blocking by env var, and start-up errors that name the culprit."""

from __future__ import annotations

import pytest

from mediasvc.errors import ConfigurationError
from mediasvc.hookspecs import hookimpl
from mediasvc.plugins import PluginHost
from tests.conftest import run_cli


def test_sample_plugin_is_discovered_by_entry_point(settings, sample_plugin_installed):
    host = PluginHost(settings)
    infos = {info.name: info for info in host.plugin_infos()}
    assert infos["sample"].version == "0.3.1"
    assert infos["sample"].source == "mediasvc-sample"
    assert infos["sample"].hooks == ["asset_panels", "register_processors"]
    assert "sample_checksum" in host.processors
    assert {"storage", "webhooks", "logsink"} <= set(infos)


def test_blocking_removes_the_sample_plugin(make_settings, sample_plugin_installed):
    host = PluginHost(make_settings(blocked_plugins=["sample"]))
    assert "sample_checksum" not in host.processors
    infos = {info.name: info for info in host.plugin_infos()}
    assert infos["sample"].blocked is True
    assert infos["sample"].hooks == []


def test_cli_plugins_lists_and_blocks_by_env_var(database_url, sample_plugin_installed):
    listed = run_cli("plugins", env={"MEDIASVC_DATABASE_URL": database_url})
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.startswith("sample "))
    assert "0.3.1" in line and "register_processors" in line
    blocked = run_cli("plugins", env={"MEDIASVC_DATABASE_URL": database_url,
                                      "MEDIASVC_BLOCKED_PLUGINS": "sample,logsink"})
    lines = {line.split()[0]: line for line in blocked.stdout.splitlines()}
    assert "BLOCKED" in lines["sample"] and "BLOCKED" in lines["logsink"]
    assert "register_processors" not in lines["sample"]


async def test_plugins_endpoint(client, auth):
    response = await client.get("/api/v1/plugins", headers=auth)
    names = {p["name"]: p for p in response.json()}
    assert names["storage"]["hooks"] == ["register_storage_backends"]
    assert names["mediasvc.core_plugin"]["source"] == "core"


def test_duplicate_processor_name_names_both_modules(settings):
    class Dup:
        @hookimpl
        def register_processors(self, settings):
            class Twin:
                name = "sample_checksum"
                kinds = frozenset({"image"})
                timeout_seconds = 1

                async def run(self, ctx):
                    return []

            return [Twin()]

    with pytest.raises(ConfigurationError, match=r"Duplicate processor name 'sample_checksum'.*mediasvc_sample"):
        PluginHost(settings, [Dup()]).validate()


def test_unknown_storage_backend_lists_the_available_ones(make_settings):
    host = PluginHost(make_settings(**{"storage.backend": "ftp"}))
    with pytest.raises(ConfigurationError) as error:
        host.create_storage()
    assert "Unknown storage backend 'ftp'" in str(error.value)
    assert "'local'" in str(error.value) and "'s3'" in str(error.value)


def test_misspelled_hook_fails_at_start_naming_the_plugin(settings):
    class Typo:
        @hookimpl
        def register_processor(self, settings):  # missing the final s
            return []

    with pytest.raises(ConfigurationError, match="register_processor"):
        PluginHost(settings, [Typo()])


def test_job_names_must_be_namespaced_and_unique(settings):
    async def task(ctx):
        return None

    class Bare:
        @hookimpl
        def register_jobs(self):
            return [("task", task)]

    class Twice:
        @hookimpl
        def register_jobs(self):
            return [("events.dispatch", task)]

    with pytest.raises(ConfigurationError, match="namespaced"):
        PluginHost(settings, [Bare()]).validate()
    with pytest.raises(ConfigurationError, match="Duplicate job name 'events.dispatch'"):
        PluginHost(settings, [Twice()]).validate()


def test_bad_webhook_settings_fail_naming_the_key(make_settings):
    settings = make_settings(plugins={"webhooks": {"targets": [{"name": "x", "url": "ftp://nope", "secret": "s"}]}})
    with pytest.raises(ConfigurationError, match=r"plugins\.webhooks\.targets\[0\]\.url"):
        PluginHost(settings).validate()


def test_a_profile_step_without_its_plugin_fails_start_up_naming_the_extra(make_settings):
    strict = make_settings(blocked_plugins=["transcription"],
                           profiles={"lecture": {"kind": "audio", "formats": ["wav"], "max_bytes": 1000,
                                                 "bucket": "lectures", "steps": ["probe", "transcribe"]}})
    with pytest.raises(ConfigurationError) as excinfo:
        PluginHost(strict).validate()
    message = str(excinfo.value)
    assert "'lecture'" in message and "'transcribe'" in message and "pip install 'mediasvc[transcription]'" in message


def test_default_profiles_start_without_optional_plugins(make_settings):
    """A core-only deployment: the default profiles' transcribe step is optional, so start-up succeeds."""
    host = PluginHost(make_settings(blocked_plugins=["transcription"]))
    host.validate()
    assert "transcribe" not in host.processors and "transcribe" in host.settings.profiles["video_response"].steps
