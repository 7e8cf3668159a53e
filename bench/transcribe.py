"""Transcription benchmark: real-time factor (audio seconds / wall seconds) and word error rate of every installed
engine and model on English speech that espeak-ng speaks here from a known text (a paragraph bank, several minutes).

Engines come from the plugin host (`PluginHost(load_settings()).transcription_engines`), so the benchmark sees
whatever is installed: `whispercpp` (tiny.en, base) and `faster-whisper` when its plugin is there. Models are
prepared first (`ModelSpec.install`: conversion or joining, from registry packages), and each model is loaded by
a short warm-up call, so the timed run measures transcription only. Each row's speed is also given relative to the
first row measured in the same run (a ratio stays meaningful on a busy machine), with the process CPU seconds
and the load average, to show how contended the machine was.

When the ``transcribe`` processor is installed, the service path is measured too, on the same audio: a fresh
database migrated by ``mediasvc migrate``, the app with its in-process worker, a presigned upload of the WAV to a
profile whose only step is ``transcribe``, until ``GET /api/v1/assets/{id}/transcription`` has the transcript;
against a direct call of the same engine and model (warm) in the same run. It needs PostgreSQL and Redis as the
tests use them (``MEDIASVC_TEST_PG``, ``MEDIASVC_TEST_REDIS``).

    uv run --locked python bench/transcribe.py [--minutes 3] [--threads 2] [--engines whispercpp,faster-whisper]
        [--models tiny.en,base] [--rounds 1] [--no-service]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.speech

from mediasvc_transcription.wer import word_error_rate

from mediasvc.plugins import PluginHost
from mediasvc.settings import load_settings
from tests.speech import read_mono, speak_wav, write_wav

PARAGRAPHS = (
    ("Every morning the bakery on the corner opens before sunrise. The owner mixes flour, water and salt, "
     "then waits for the dough to rise while the ovens warm up."),
    ("Thank you for joining this interview. Could you describe a project you are proud of, the problem it "
     "solved, and what you would do differently today?"),
    ("The train to the coast leaves at nine in the morning. The journey takes about three hours, so "
     "remember to pack some water, a sandwich and a good book."),
    ("Our quarterly report shows that sales grew again, while costs stayed almost flat. The board will "
     "discuss the results at the meeting next Tuesday."),
    ("To reset your password, open the settings page, choose security, and follow the link we send to your"
     " email address. The link expires after one hour."),
    ("Scientists have found that people who walk every day sleep better and feel less stressed. The study "
     "followed many adults for a whole year."),
    ("Please turn off your phone before the concert begins. Photography is not allowed during the "
     "performance, but you may take pictures at the end."),
    ("The library will be closed on Monday for maintenance. Books that are due that day can be returned on"
     " Tuesday without a late fee."),
    ("In the first lesson we will learn how plants turn sunlight into energy. Bring a notebook, because "
     "there will be a short quiz at the end of the week."),
    ("The weather tomorrow will be cloudy with light rain in the afternoon. Temperatures will stay mild, "
     "with a gentle wind from the west."),
    ("When you arrive at the hotel, ask the front desk for a map of the old town. Most museums are within "
     "walking distance and open until six."),
    ("Our support team answers questions every day from morning to evening. If your order has not arrived "
     "within a week, send us the tracking number and we will help."),
)
# Numbers are avoided: Whisper writes "12%" for "twelve percent", which a plain WER counts as errors.
PAUSE_SECONDS = 0.8
WANTED_MODELS = {"whispercpp": ("tiny.en", "base"), "faster-whisper": ("tiny.en", "base")}
PREPARE = ("whisper-tiny.en", "whisper-base", "faster-whisper-base")  # ModelSpec names, when registered


@dataclass
class Row:
    engine: str
    model: str
    audio_seconds: float
    wall_seconds: float
    cpu_seconds: float
    wer: float

    @property
    def realtime(self) -> float:
        return self.audio_seconds / self.wall_seconds


def make_speech(folder: Path, minutes: float) -> tuple[Path, str]:
    """Paragraphs spoken one after another, with a short pause between them, until ``minutes`` of audio."""
    pause = np.zeros(int(PAUSE_SECONDS * 16000), dtype=np.int16)
    pieces: list[np.ndarray] = []
    texts: list[str] = []
    seconds = 0.0
    while seconds < minutes * 60:
        text = PARAGRAPHS[len(texts) % len(PARAGRAPHS)]
        samples = read_mono(speak_wav(text, folder / f"p{len(texts)}.wav"))
        pieces += [samples, pause]
        texts.append(text)
        seconds += (samples.size + pause.size) / 16000
    return write_wav(folder / "speech.wav", np.concatenate(pieces)), " ".join(texts)


def measure(engine, model: str, wav: Path, reference: str, threads: int, rounds: int, warmup: Path) -> Row:
    engine.transcribe(warmup, model=model, threads=threads)  # loads (and caches) the model
    walls, cpus, result = [], [], None
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        result = engine.transcribe(wav, model=model, threads=threads)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return Row(engine.name, model, result.duration_seconds, statistics.median(walls), statistics.median(cpus),
               word_error_rate(reference, result.text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--engines", default="whispercpp,faster-whisper")
    parser.add_argument("--models", default="tiny.en,base")
    parser.add_argument("--no-service", action="store_true", help="skip the job -> transcript measurement")
    args = parser.parse_args()

    settings = load_settings()
    host = PluginHost(settings)
    for name in PREPARE:
        spec = host.models.get(name)
        if spec is not None and spec.locate(settings) is None:
            print(f"preparing {name}…", file=sys.stderr)
            spec.install(settings)
    engines = host.transcription_engines
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        wav, reference = make_speech(Path(tmp), args.minutes)
        warmup = speak_wav("Hello.", Path(tmp) / "warmup.wav")
        for engine_name in args.engines.split(","):
            if engine_name not in engines:
                print(f"{engine_name}: not installed, skipped", file=sys.stderr)
                continue
            for model in args.models.split(","):
                if model not in WANTED_MODELS.get(engine_name, ()):
                    continue
                load = os.getloadavg()[0]
                row = measure(engines[engine_name], model, wav, reference, args.threads, args.rounds, warmup)
                rows.append(row)
                print(f"{row.engine} {row.model}: {row.realtime:.1f}x realtime, WER {row.wer:.1%} "
                      f"(load average {load:.1f})", file=sys.stderr)
        print_table(rows, args)
        if not rows or args.no_service:
            return
        if "transcribe" not in host.processors:
            print("\nservice path: the transcribe processor is not installed, skipped")
            return
        first = rows[0]
        direct = measure(engines[first.engine], first.model, wav, reference, args.threads, 1, warmup)
        through = asyncio.run(service_path(wav, reference, first, settings, args.threads))
        print(f"\n| path ({direct.engine} {direct.model}) | wall s | × realtime | WER |\n|---|---|---|---|")
        for label, row in (("direct engine call", direct), ("service: upload → job → transcript", through)):
            print(f"| {label} | {row.wall_seconds:.1f} | {row.realtime:.1f} | {row.wer:.1%} |")
        print(f"\nservice / direct wall time: {through.wall_seconds / direct.wall_seconds:.2f}")


async def service_path(wav: Path, reference: str, first: Row, settings, threads: int) -> Row:
    """Upload ``wav`` to a running app (in-process worker) and wait for its transcript, as a client would."""
    from mediasvc.app import create_app
    from mediasvc.auth import create_api_key
    from tests.conftest import REDIS_URL, create_database, drop_database, run_cli, serve_in_process

    name = f"mediasvc_bench_{uuid.uuid4().hex[:8]}"
    url = await create_database(name)
    try:
        migrated = run_cli("migrate", env={"MEDIASVC_DATABASE_URL": url})
        if migrated.returncode != 0:
            raise RuntimeError(migrated.stderr)
        with tempfile.TemporaryDirectory() as data_dir:
            app = create_app(load_settings(env={}, **{
                "database_url": url, "queue.url": REDIS_URL, "queue.name": name, "data_dir": data_dir,
                "models_dir": str(settings.models_path), "secret_key": "bench", "run_worker_in_app": True,
                "profiles": {"speech": {"kind": "audio", "formats": ["wav"], "max_bytes": 500_000_000,
                                        "bucket": "speech", "steps": ["transcribe"]}},
                "plugins": {"transcription": {"engine": first.engine, "model": first.model, "threads": threads}},
            }))
            async with serve_in_process(app) as http:
                key, _ = await create_api_key(name)
                auth = {"Authorization": f"Bearer {key}"}
                start, cpu = time.perf_counter(), time.process_time()
                asset_id = await _upload(http, auth, wav.read_bytes())
                body = await _transcript(http, auth, asset_id)
                wall = time.perf_counter() - start
                return Row(body["engine"], first.model, body["duration_seconds"], wall, time.process_time() - cpu,
                           word_error_rate(reference, body["text"]))
    finally:
        await drop_database(name)


async def _upload(http, auth: dict[str, str], data: bytes) -> str:
    """The presigned local upload path: ticket, signed PUT, confirm."""
    from urllib.parse import urlsplit

    ticket = (await http.post("/api/v1/uploads", headers=auth, json={
        "file_name": "speech.wav", "profile": "speech", "content_type": "audio/wav", "size_bytes": len(data)})).json()
    target = urlsplit(ticket["url"])
    put = await http.put(f"{target.path}?{target.query}", content=data, headers=ticket["headers"])
    put.raise_for_status()
    confirmed = await http.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=auth)
    confirmed.raise_for_status()
    return confirmed.json()["asset_id"]


async def _transcript(http, auth: dict[str, str], asset_id: str, timeout: float = 3600) -> dict:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        response = await http.get(f"/api/v1/assets/{asset_id}/transcription", headers=auth)
        if response.status_code == 200 and response.json().get("status") == "ready":
            return response.json()
        status = (await http.get(f"/api/v1/assets/{asset_id}/status", headers=auth)).json()
        if status["status"] == "failed":
            raise RuntimeError(f"transcription failed: {status}")
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no transcript for {asset_id} after {timeout:.0f} s")


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    print(f"\n{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads, load average now "
          f"{os.getloadavg()[0]:.1f}; audio {rows[0].audio_seconds:.0f} s of espeak-ng speech\n" if rows else "")
    print("| engine | model | audio s | wall s | CPU s | × realtime | vs first row | WER |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row.engine} | {row.model} | {row.audio_seconds:.0f} | {row.wall_seconds:.1f} | "
              f"{row.cpu_seconds:.1f} | {row.realtime:.1f} | {row.realtime / rows[0].realtime:.2f} | "
              f"{row.wer:.1%} |", flush=True)


if __name__ == "__main__":
    main()
