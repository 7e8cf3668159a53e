"""Benchmark: the transcription path against bare faster-whisper on the same audio, in the same run.

    uv run --locked python bench/transcription_service.py [--seconds 30] [--repeat 3]

Baseline: ``faster_whisper.WhisperModel.transcribe`` on a 16 kHz WAV (tiny.en, int8, greedy, 2 threads), segments
consumed. Measured against it, on the same WAV: our engine (clamping, confidences, word timestamps), our engine
without word timestamps, the whole ``transcribe`` path minus storage (silence check + engine + WebVTT/SRT), and
session stitching of the same speech cut into three overlapping chunks (stitch alone). Ratios stay meaningful on
a loaded machine; absolute times do not. Speech comes from espeak-ng (tests/speech.py). Add ``--base`` to time
the base model too (it needs ``mediasvc models install faster-whisper-base``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mediasvc_fasterwhisper.engine import FasterWhisperEngine, _load
from mediasvc_fasterwhisper.models import resolve
from mediasvc_fasterwhisper.settings import FasterWhisperSettings
from mediasvc_transcription.captions import to_srt, to_webvtt
from mediasvc_transcription.silence import is_silent
from mediasvc_transcription.stitch import ChunkText, stitch
from mediasvc_transcription.wer import word_error_rate

from mediasvc.settings import load_settings
from tests.speech import read_mono, speak_wav, write_wav

SENTENCES = [
    "Please describe a project you are proud of and the part you played in it.",
    "Tell me about a time you disagreed with a colleague and how you resolved it.",
    "What would you change about the way your last team planned its work?",
    "How do you decide what to test first when a deadline is close?",
    "Describe a difficult bug you fixed and what you learned from it.",
    "Why are you interested in this role and what do you hope to learn here?",
]


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--base", action="store_true")
    args = parser.parse_args()
    settings = load_settings(env={}, secret_key="bench")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        words_needed = int(args.seconds * 2.5)  # espeak-ng speaks about 150 words a minute
        pool = " ".join(SENTENCES * (1 + words_needed // len(" ".join(SENTENCES).split()))).split()
        text = " ".join(pool[:words_needed])
        speak_wav(text, wav)
        samples = read_mono(wav)
        seconds = samples.size / 16000
        model = _load(resolve("tiny.en", settings), "int8", args.threads)

        def bare():
            segments, _ = model.transcribe(str(wav), beam_size=1, language="en", condition_on_previous_text=False)
            return " ".join(s.text.strip() for s in segments)

        ours = FasterWhisperEngine(settings, FasterWhisperSettings())
        plain = FasterWhisperEngine(settings, FasterWhisperSettings(word_timestamps=False))
        bare()  # warm-up
        rows = []
        base_time, base_text = timed(bare, args.repeat)
        rows.append(("bare faster-whisper (baseline)", base_time, word_error_rate(text, base_text)))
        t, r = timed(lambda: plain.transcribe(wav, threads=args.threads), args.repeat)
        rows.append(("engine, no word timestamps", t, word_error_rate(text, r.text)))
        t, r = timed(lambda: ours.transcribe(wav, threads=args.threads), args.repeat)
        rows.append(("engine (default settings)", t, word_error_rate(text, r.text)))

        def step():
            if is_silent(wav):
                return ""
            result = ours.transcribe(wav, threads=args.threads)
            to_webvtt(result.segments), to_srt(result.segments)
            return result.text

        t, r = timed(step, args.repeat)
        rows.append(("transcribe step, no storage", t, word_error_rate(text, r)))

        overlap, length = 16000 * 2, (samples.size + 2 * 16000 * 2) // 3 + 1
        chunks = []
        for index in range(3):
            start = index * (length - overlap)
            path = write_wav(Path(tmp) / f"c{index}.wav", samples[start:start + length])
            result = ours.transcribe(path, threads=args.threads)
            chunks.append(ChunkText(index, result.duration_seconds, 2.0 if index else 0.0, result))
        t, stitched = timed(lambda: stitch(chunks), max(args.repeat, 20))
        rows.append(("stitch 3 chunk transcripts", t, word_error_rate(text, stitched.text)))
        if args.base:
            base_engine = FasterWhisperEngine(settings, FasterWhisperSettings(model="base"))
            base_engine.transcribe(wav, language="en", threads=args.threads)
            t, r = timed(lambda: base_engine.transcribe(wav, language="en", threads=args.threads), args.repeat)
            rows.append(("engine, base model", t, word_error_rate(text, r.text)))

    print(f"{seconds:.1f} s of espeak-ng speech, {args.threads} threads, median of {args.repeat}")
    print(f"{'':34} {'seconds':>8} {'x realtime':>10} {'vs baseline':>11} {'WER':>6}")
    for name, t, wer in rows:
        print(f"{name:34} {t:8.3f} {seconds / t:10.1f} {t / base_time:10.2f}x {wer:6.1%}")


if __name__ == "__main__":
    main()
