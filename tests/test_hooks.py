"""One test per hook spec: a plugin implementing it changes what the app or worker does."""

from __future__ import annotations

import uuid

import msgspec
import pytest
from litestar import get
from mediasvc_storage.local import MemoryBackend
from saq import CronJob

from mediasvc.jobs.worker import worker_settings
from mediasvc.worker_options import housekeeping_options
from mediasvc.app import create_app
from mediasvc.contracts import (
    AnalysisResult,
    Finding,
    JoinPart,
    JoinResult,
    MediaInfo,
    MediaUnreadable,
    MenuLink,
    ModelSpec,
    Panel,
    Transcription,
)
from mediasvc.errors import ConfigurationError
from mediasvc.hookspecs import hookimpl
from mediasvc.plugins import PluginHost
from tests.conftest import serve_in_process


class ScratchBackend(MemoryBackend):
    name = "scratch"


async def scratch_task(ctx, **kwargs):
    return {"ok": True}


class PluginWithEverything:
    """Implements every hook; each test looks at the one it names."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def register_storage_backends(self):
        return [ScratchBackend]

    @hookimpl
    def register_processors(self, settings):
        class Upper:
            name = "upper"
            kinds = frozenset({"document"})
            timeout_seconds = 5

            async def run(self, ctx):
                return []

        return [Upper()]

    @hookimpl
    def register_event_sinks(self, settings):
        class Nowhere:
            name = "nowhere"

            def accepts(self, event_type):
                return event_type == "media.deleted"

            async def deliver(self, event):
                return None

        return [Nowhere()]

    @hookimpl
    def register_routes(self, settings):
        @get("/plugin-hello", opt={"public": True})
        async def hello() -> dict[str, str]:
            return {"hello": settings.queue.name}

        return [hello]

    @hookimpl
    def register_jobs(self):
        return [("scratch.task", scratch_task)]

    @hookimpl
    def register_cron_jobs(self):
        return [CronJob(scratch_task, cron="*/5 * * * *", timeout=30)]

    @hookimpl
    def register_settings(self):
        class ScratchSettings(msgspec.Struct):
            greeting: str = "hi"
            times: int = 1

        return [("scratch", ScratchSettings)]

    @hookimpl
    def piccolo_apps(self):
        return ["tests.scratch_piccolo_app"]

    @hookimpl
    def dashboard_panels(self, request):
        return [Panel(title="Scratch", template="scratch.html", context={"n": 1})]

    @hookimpl
    def asset_panels(self, request, asset):
        return [Panel(title=f"Scratch for {asset['kind']}", template="scratch.html", context={"n": 2})]

    @hookimpl
    def menu_links(self, request):
        return [MenuLink(label="Scratch", href="/scratch")]

    @hookimpl
    def register_models(self, settings):
        target = settings.models_path / "scratch.bin"

        def install(settings):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"weights")
            return target

        return [ModelSpec(name="scratch-model", description="test", licence="CC0",
                          locate=lambda settings: target if target.exists() else None, install=install)]

    @hookimpl
    def register_transcription_engines(self, settings):
        class Echo:
            name = "echo"

            def transcribe(self, audio_path, *, language=None, model=None, threads=None):
                text = audio_path.read_text()
                return Transcription(text=text, language=language or "en", duration_seconds=1.0, segments=[],
                                     model=model or "echo", engine=self.name)

        return [Echo()]

    @hookimpl
    def register_analyzers(self, settings):
        class Size:
            name = "size"
            model = "pixels"

            def analyze(self, image, *, max_results=10, min_confidence=0.0):
                return AnalysisResult(analysis_type=self.name, model=self.model, elapsed_ms=0.0,
                                      findings=[Finding(name=f"{image.width}x{image.height}", confidence=1.0)])

        return [Size()]

    @hookimpl
    def register_media_probers(self, settings):
        class TextProber:
            name = "text"
            content_types = frozenset({"text/plain"})

            def duration(self, path):
                return float(len(path.read_text().split()))  # a second per word

            def describe(self, path, content_type):
                words = path.read_text().split()
                if not words:
                    raise MediaUnreadable("no words")
                return MediaInfo(format="words", duration_seconds=float(len(words)), bit_rate=None, streams=[])

        return [TextProber()]

    @hookimpl
    def register_chunk_joiners(self, settings):
        class Concatenate:
            name = "concatenate"

            def join(self, parts, out_path, extension, *, kind):
                out_path.write_bytes(b"".join(part.path.read_bytes() for part in parts))
                return JoinResult(mode="concatenate", duration=0.0, parts=len(parts), extension=extension)

        return [Concatenate()]

    @hookimpl
    def register_event_types(self):
        return ["scratch.happened", "media.uploaded"]  # a core type declared again is listed once

    @hookimpl
    def startup(self, app):
        async def started():
            self.calls.append(f"startup:{app is not None}")

        return started()

    @hookimpl
    def shutdown(self, app):
        self.calls.append(f"shutdown:{app is not None}")


def host_with(settings, plugin=None):
    return PluginHost(settings, [plugin or PluginWithEverything()])


def test_hook_register_storage_backends(make_settings):
    host = host_with(make_settings(**{"storage.backend": "scratch"}))
    assert isinstance(host.create_storage(), ScratchBackend)
    assert {"local", "memory", "s3", "gcs", "azure", "scratch"} <= set(host.storage_backend_classes)


def test_hook_register_processors(settings):
    assert host_with(settings).processors["upper"].kinds == frozenset({"document"})


def test_hook_register_event_sinks(settings):
    sinks = host_with(settings).event_sinks
    assert sinks["nowhere"].accepts("media.deleted") and not sinks["nowhere"].accepts("media.uploaded")
    assert "log" in sinks  # the built-in log sink plugin is there too


async def test_hook_register_routes(make_settings):
    app = create_app(make_settings(**{"queue.name": "routes-q"}), extra_plugins=[PluginWithEverything()])
    async with serve_in_process(app) as http:
        response = await http.get("/plugin-hello")
    assert response.json() == {"hello": "routes-q"}


def test_hook_register_jobs(settings):
    options = worker_settings(settings, host=host_with(settings))
    names = [name for name, _ in options["functions"]]
    assert "scratch.task" in names and "events.dispatch" in names


def test_hook_register_cron_jobs(settings):
    host = host_with(settings)
    options = worker_settings(settings, host=host)
    housekeeping = housekeeping_options(settings, host, options["queue"])  # crons run on the housekeeping queue
    cron_names = {cron.function.__qualname__ for cron in housekeeping["cron_jobs"]}
    assert "scratch.task" in cron_names  # cron jobs run under their namespaced job name


def test_hook_register_settings(make_settings):
    host = host_with(make_settings(plugins={"scratch": {"greeting": "hello", "times": "3"}}))
    assert host.plugin_settings["scratch"].greeting == "hello"
    assert host.plugin_settings["scratch"].times == 3
    bad = host_with(make_settings(plugins={"scratch": {"times": "many"}}))
    with pytest.raises(ConfigurationError, match=r"plugins\.scratch"):
        bad.validate()


def test_hook_piccolo_apps(settings):
    assert "tests.scratch_piccolo_app" in host_with(settings).piccolo_apps()


def test_hook_dashboard_panels(settings):
    panels = [p for result in host_with(settings).hook.dashboard_panels(request=None) for p in result]
    assert "Scratch" in [p.title for p in panels]  # installed plugins (mediasvc-zoom) add their own


def test_hook_asset_panels(settings):
    results = host_with(settings).hook.asset_panels(request=None, asset={"kind": "image"})
    assert [p.title for result in results for p in result] == ["Scratch for image"]


def test_hook_menu_links(settings):
    links = [link for result in host_with(settings).hook.menu_links(request=None) for link in result]
    assert ("Scratch", "/scratch") in [(link.label, link.href) for link in links]


async def test_hook_startup(make_settings):
    plugin = PluginWithEverything()
    app = create_app(make_settings(**{"queue.name": f"s-{uuid.uuid4().hex[:6]}"}), extra_plugins=[plugin])
    async with serve_in_process(app):
        assert plugin.calls == ["startup:True"]  # awaited: the returned coroutine ran


async def test_hook_shutdown(make_settings):
    plugin = PluginWithEverything()
    app = create_app(make_settings(**{"queue.name": f"s-{uuid.uuid4().hex[:6]}"}), extra_plugins=[plugin])
    async with serve_in_process(app):
        pass
    assert plugin.calls == ["startup:True", "shutdown:True"]



def test_hook_register_models(settings):
    spec = host_with(settings).models["scratch-model"]
    assert spec.locate(settings) is None
    path = spec.install(settings)
    assert path.read_bytes() == b"weights" and spec.locate(settings) == path
    assert path.parent == settings.models_path


def test_hook_register_transcription_engines(settings, tmp_path):
    engine = host_with(settings).transcription_engines["echo"]
    (tmp_path / "a.wav").write_text("hello there")
    result = engine.transcribe(tmp_path / "a.wav", language="de")
    assert (result.text, result.language, result.engine) == ("hello there", "de", "echo")


def test_hook_register_analyzers(settings):
    from PIL import Image

    analyzer = host_with(settings).analyzers["size"]
    assert analyzer.analyze(Image.new("RGB", (7, 5))).findings[0].name == "7x5"


def test_duplicate_analyzer_names_fail_at_startup(settings):
    class Twice:
        @hookimpl
        def register_analyzers(self, settings):
            return PluginWithEverything().register_analyzers(settings)

    host = PluginHost(settings, [PluginWithEverything(), Twice()])
    with pytest.raises(ConfigurationError, match="Duplicate analyzer name 'size'"):
        host.validate()


def test_hook_register_media_probers(settings, tmp_path):
    host = host_with(settings)
    prober = host.media_prober("text/plain")
    assert prober is host.media_probers["text"]
    (tmp_path / "a.txt").write_text("three small words")
    assert prober.duration(tmp_path / "a.txt") == 3.0
    assert prober.describe(tmp_path / "a.txt", "text/plain").format == "words"
    assert host.media_prober("video/mp4") is host.media_probers["pyav"]  # the video plugin's
    assert host.media_prober("application/pdf") is None


def test_hook_register_chunk_joiners(settings, tmp_path):
    host = PluginHost(settings, [PluginWithEverything()])
    assert set(host.chunk_joiners) == {"concatenate", "pyav"}
    assert host.chunk_joiner is host.chunk_joiners["concatenate"]  # registered last, called first
    parts = []
    for n in range(2):
        (tmp_path / f"{n}.bin").write_bytes(bytes([n]) * 3)
        parts.append(JoinPart(path=tmp_path / f"{n}.bin"))
    result = host.chunk_joiner.join(parts, tmp_path / "out.bin", "bin", kind="audio")
    assert (result.parts, (tmp_path / "out.bin").read_bytes()) == (2, b"\x00\x00\x00\x01\x01\x01")


def test_hook_register_event_types(settings):
    from mediasvc.events import EVENT_TYPES

    types = host_with(settings).event_types
    assert types[:len(EVENT_TYPES)] == list(EVENT_TYPES)  # the core's own first
    assert {"scratch.happened", "rendition.ready"} <= set(types[len(EVENT_TYPES):])  # then the plugins'
    assert len(types) == len(set(types))


def test_duplicate_media_prober_names_fail_at_startup(settings):
    class Twice:
        @hookimpl
        def register_media_probers(self, settings):
            return PluginWithEverything().register_media_probers(settings)

    host = PluginHost(settings, [PluginWithEverything(), Twice()])
    with pytest.raises(ConfigurationError, match="Duplicate media prober name 'text'"):
        host.validate()
