"""Joining a ``stream`` session: MediaRecorder ``start(timeslice)`` blobs are consecutive pieces of ONE WebM or
fragmented-MP4 byte stream (only the first has the EBML header / init segment; blobs are cut anywhere). The pieces
are concatenated into one file and remuxed — packets copied, nothing decoded — into a WebM with duration and cues
or an MP4 with a full index (``+faststart``), so the result seeks.

Around missing chunks (a session completed with ``allow_gaps``), each run of consecutive chunks after a hole is
read on its own: the stream's header, then the run from its first whole Cluster (WebM) or ``moof`` (MP4). The
timestamps those carry are the recorder's own, so the hole stays a hole in the timeline, and its time range is
reported (``JoinResult.gaps``).
"""

from __future__ import annotations

import contextlib
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from mediasvc_video.join_parts import MUXERS, pick_streams
from mediasvc_video.probe_local import open_local
from mediasvc.plugin import JoinError, JoinPart, JoinResult

WEBM_CLUSTER = b"\x1f\x43\xb6\x75"
STREAM_MUXERS = {"webm": ("webm", {}), "mkv": ("matroska", {}), "mp4": ("mp4", {"movflags": "+faststart"}),
                 "m4a": ("ipod", {"movflags": "+faststart"}), "mov": ("mov", {"movflags": "+faststart"})}


def join_stream(parts: list[JoinPart], out_path: Path, extension: str, *, kind: str) -> JoinResult:
    """Concatenate the stream's pieces and remux them to ``out_path`` (the container of ``extension``)."""
    if not parts:
        raise JoinError("no chunks to join")
    if extension not in STREAM_MUXERS:
        raise JoinError(f"a .{extension} stream cannot be joined (WebM or MP4 expected)")
    runs = _runs(parts)
    header = _header(parts[0].path, extension)
    work = out_path.parent
    files = [_write_run(work / f"run-{i}.{extension}", header, run, first=(i == 0), extension=extension)
             for i, run in enumerate(runs)]
    try:
        return _remux(files, out_path, extension, len(parts))
    finally:
        for file in files:
            with contextlib.suppress(OSError):
                file.unlink()


def _runs(parts: list[JoinPart]) -> list[list[JoinPart]]:
    runs: list[list[JoinPart]] = []
    for part in parts:
        if not runs or part.after_gap:
            runs.append([])
        runs[-1].append(part)
    return runs


def _header(path: Path, extension: str) -> bytes:
    """The stream's header: everything before the first Cluster (WebM) or ``moof`` (MP4) of the first chunk (all
    of it when it holds only the header, as Safari's first blob, the init segment)."""
    data = path.read_bytes()
    at = data.find(WEBM_CLUSTER) if extension in ("webm", "mkv") else _find_moof(data)
    if at == 0:
        raise JoinError("the first chunk does not start with the stream's header")
    return data if at < 0 else data[:at]


def _find_moof(data: bytes, start: int = 0) -> int:
    """Offset of the first ``moof`` box (its size field) at or after ``start``, or -1."""
    at = start
    while (at := data.find(b"moof", at)) != -1:
        if at >= 4 and data[at + 8:at + 12] == b"mfhd":
            return at - 4
        at += 4
    return -1


def _write_run(target: Path, header: bytes, run: list[JoinPart], *, first: bool, extension: str) -> Path:
    with open(target, "wb") as out:
        if first:  # the stream as recorded, header included
            for part in run:
                with open(part.path, "rb") as source:
                    shutil.copyfileobj(source, out)
            return target
        # after a hole: the header, then the run from its first whole cluster / fragment
        data = b"".join(part.path.read_bytes() for part in run)
        at = data.find(WEBM_CLUSTER) if extension in ("webm", "mkv") else _find_moof(data)
        out.write(header)
        if at >= 0:
            out.write(data[at:])
    return target


def _remux(files: list[Path], out_path: Path, extension: str, count: int) -> JoinResult:
    muxer, options = STREAM_MUXERS.get(extension) or MUXERS[extension]
    out_streams: dict[str, Any] = {}
    last_dts: dict[str, int] = {}
    origin: Fraction | None = None
    end = Fraction(0)
    gaps: list[tuple[float, float]] = []
    try:
        with av.open(str(out_path), mode="w", format=muxer, options=options) as output:
            for index, file in enumerate(files):
                run_start: Fraction | None = None
                with open_local(file) as container:
                    video, audio = pick_streams(container)
                    chosen = {s.index: name for name, s in (("video", video), ("audio", audio)) if s is not None}
                    if index == 0:
                        for name, stream in (("video", video), ("audio", audio)):
                            if stream is not None:
                                out_streams[name] = output.add_stream_from_template(stream)
                    for packet in _packets(container, list(chosen)):
                        name = chosen[packet.stream.index]
                        if name not in out_streams:
                            continue
                        t = packet.pts * packet.time_base
                        if origin is None:
                            origin = t
                        if run_start is None and index > 0:
                            run_start = t
                            gaps.append((float(end - origin), float(max(t, end) - origin)))
                        shift = -round(origin / packet.time_base)
                        dts = (packet.dts if packet.dts is not None else packet.pts) + shift
                        if name in last_dts and dts <= last_dts[name]:
                            continue  # the header's re-read or a resent piece: never go back in time
                        last_dts[name] = dts
                        packet.pts += shift
                        packet.dts = dts
                        end = max(end, t + (packet.duration or 0) * packet.time_base)
                        packet.stream = out_streams[name]
                        output.mux(packet)
    except av.FFmpegError as exc:
        raise JoinError(f"the stream cannot be read: {exc.strerror or type(exc).__name__}") from None
    except ValueError as exc:
        raise JoinError(f"the stream cannot be remuxed: {exc}") from None
    if origin is None:
        raise JoinError("the stream holds no audio or video packets")
    return JoinResult(mode="remux", duration=float(end - origin), parts=count, extension=extension, gaps=gaps)


def _packets(container: Any, streams: list[int]) -> Any:
    """Demuxed packets with timestamps; a stream cut short at its end (the last blob) just ends there."""
    chosen = [s for s in container.streams if s.index in streams]
    iterator = container.demux(chosen)
    while True:
        try:
            packet = next(iterator)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            return  # truncated tail: what was read so far is kept
        if packet.size and packet.pts is not None:
            yield packet
