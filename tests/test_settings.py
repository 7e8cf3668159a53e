"""Settings: env vars and TOML into one typed object, errors that name the key, profiles merged field by field."""

from __future__ import annotations

import pytest

from mediasvc.profiles import MB
from mediasvc.settings import SettingsError, ensure_secret_key, load_settings


def test_env_vars_nested_lists_and_json():
    settings = load_settings(env={
        "MEDIASVC_PORT": "9000",
        "MEDIASVC_STORAGE__BACKEND": "s3",
        "MEDIASVC_STORAGE__PATH_STYLE": "false",
        "MEDIASVC_BLOCKED_PLUGINS": "sample, logsink",
        "MEDIASVC_STORAGE__OPTIONS": '{"timeout": "30s"}',
        "OTHER_VAR": "ignored",
    })
    assert settings.port == 9000
    assert settings.storage.backend == "s3"
    assert settings.storage.path_style is False
    assert settings.blocked_plugins == ["sample", "logsink"]
    assert settings.storage.options == {"timeout": "30s"}


def test_toml_file_then_env_overrides(tmp_path):
    config = tmp_path / "mediasvc.toml"
    config.write_text('port = 7000\nlog_level = "DEBUG"\n[queue]\nname = "from-toml"\nconcurrency = 2\n')
    settings = load_settings(env={"MEDIASVC_CONFIG": str(config), "MEDIASVC_PORT": "7001"})
    assert settings.port == 7001
    assert settings.log_level == "DEBUG"
    assert settings.queue.name == "from-toml"
    assert settings.queue.concurrency == 2


@pytest.mark.parametrize(("env", "named"), [
    ({"MEDIASVC_PORT": "eighty"}, "MEDIASVC_PORT"),
    ({"MEDIASVC_QUEUE__CONCURRENCY": "lots"}, "MEDIASVC_QUEUE__CONCURRENCY"),
    ({"MEDIASVC_STORAGE__BACKEDN": "s3"}, "backedn"),
    ({"MEDIASVC_PORT": "70000"}, "MEDIASVC_PORT"),
    ({"MEDIASVC_DATABASE_URL": "mysql://x"}, "MEDIASVC_DATABASE_URL"),
    ({"MEDIASVC_QUEUE__URL": "amqp://x"}, "MEDIASVC_QUEUE__URL"),
    ({"MEDIASVC_STORAGE__OPTIONS": "{bad json"}, "MEDIASVC_STORAGE__OPTIONS"),
    ({"MEDIASVC_CONFIG": "/nonexistent/mediasvc.toml"}, "MEDIASVC_CONFIG"),
])
def test_bad_values_name_the_key(env, named):
    with pytest.raises(SettingsError) as error:
        load_settings(env=env)
    assert named in str(error.value)


def test_default_profiles_follow_the_interview_design():
    profiles = load_settings(env={}).profiles
    assert profiles["video_response"].formats == ["mp4", "webm", "mov"]
    assert profiles["video_response"].max_bytes == 500 * MB
    assert profiles["audio_response"].formats == ["mp3", "wav", "m4a", "ogg", "webm"]
    assert profiles["audio_response"].max_bytes == 100 * MB
    assert profiles["question_image"].max_bytes == 10 * MB
    assert profiles["avatar"].max_bytes == 5 * MB
    assert profiles["interview_attachment"].formats == ["pdf"]
    assert profiles["interview_attachment"].max_bytes == 50 * MB


def test_configured_profiles_extend_and_override_field_by_field(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[profiles.avatar]\nmax_bytes = 1024\n[profiles.logo]\nkind = "image"\nformats = ["svg"]\n'
                      'max_bytes = 2048\nbucket = "logos"\n')
    profiles = load_settings(env={"MEDIASVC_CONFIG": str(config)}).profiles
    assert profiles["avatar"].max_bytes == 1024
    assert profiles["avatar"].formats == ["jpg", "jpeg", "png", "gif", "webp"]  # kept from the default
    assert profiles["logo"].bucket == "logos"
    assert "video_response" in profiles


def test_bad_profile_names_it(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[profiles.avatar]\nmax_bytes = 0\n')
    with pytest.raises(SettingsError, match=r"profiles\.avatar\.max_bytes"):
        load_settings(env={"MEDIASVC_CONFIG": str(config)})


def test_settings_are_not_cached_between_calls():
    assert load_settings(env={"MEDIASVC_PORT": "8001"}).port == 8001
    assert load_settings(env={"MEDIASVC_PORT": "8002"}).port == 8002


def test_secret_key_is_generated_once_into_the_data_dir(tmp_path):
    first = ensure_secret_key(load_settings(env={}, data_dir=str(tmp_path)))
    second = ensure_secret_key(load_settings(env={}, data_dir=str(tmp_path)))
    assert len(first.secret_key) >= 40
    assert first.secret_key == second.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert ensure_secret_key(load_settings(env={}, secret_key="given")).secret_key == "given"


def test_an_empty_variable_is_an_empty_value_not_bad_json():
    settings = load_settings(env={"MEDIASVC_QUEUE__URL": "", "MEDIASVC_BLOCKED_PLUGINS": ""})
    assert settings.queue.url == ""
    assert settings.queue_url == settings.database_url  # empty: the Postgres queue on the database
    assert settings.blocked_plugins == []
