"""The secret key signs URLs and tokens that any host may check: a multi-host setup (Redis queue or an object
store) without MEDIASVC_SECRET_KEY refuses to start instead of generating a key per data dir; one host still
generates one."""

from __future__ import annotations

import pytest

from mediasvc.app import create_app
from mediasvc.settings import SettingsError, ensure_secret_key, load_settings
from tests.conftest import REDIS_URL, run_cli

REFUSAL = "MEDIASVC_SECRET_KEY must be set when the queue is Redis or storage is an object store"
S3 = {"storage.backend": "s3", "storage.bucket": "media", "storage.endpoint": "http://127.0.0.1:1"}


@pytest.mark.parametrize("multi_host", [{"queue.url": REDIS_URL}, {"queue.url": "rediss://cache:6380/0"}, S3,
                                        {"storage.backend": "gcs", "storage.bucket": "media"}],
                         ids=["redis", "rediss", "s3", "gcs"])
def test_a_multi_host_setup_without_a_secret_key_refuses_to_start(tmp_path, multi_host):
    settings = load_settings(env={}, data_dir=str(tmp_path), **multi_host)
    with pytest.raises(SettingsError, match=REFUSAL):
        ensure_secret_key(settings)
    with pytest.raises(SettingsError, match=REFUSAL):
        create_app(settings)  # what every API process (and `serve`'s start-up check) runs first
    assert not (tmp_path / "secret_key").exists()  # nothing generated that another host would not share
    given = load_settings(env={}, data_dir=str(tmp_path), secret_key="shared", **multi_host)
    assert ensure_secret_key(given).secret_key == "shared"


def test_a_single_host_setup_still_generates_one(tmp_path):
    postgres_queue = load_settings(env={}, data_dir=str(tmp_path / "a"))  # local storage, the database as queue
    assert len(ensure_secret_key(postgres_queue).secret_key) >= 40
    assert (tmp_path / "a" / "secret_key").exists()
    memory = load_settings(env={}, data_dir=str(tmp_path / "b"), **{"storage.backend": "memory"})
    assert ensure_secret_key(memory).secret_key
    # `mediasvc dev` runs alone whatever its environment says
    dev = load_settings(env={}, data_dir=str(tmp_path / "c"), **{"queue.url": REDIS_URL})
    first = ensure_secret_key(dev, single_host=True).secret_key
    assert first and ensure_secret_key(dev, single_host=True).secret_key == first


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_name_the_missing_key_in_one_line(tmp_path, command):
    result = run_cli(command, env={"MEDIASVC_QUEUE__URL": REDIS_URL, "MEDIASVC_DATA_DIR": str(tmp_path),
                                   "MEDIASVC_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"})
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [f"mediasvc: {REFUSAL} (several hosts must share it)"]
    assert not (tmp_path / "secret_key").exists()
