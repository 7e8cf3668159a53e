"""The official whisper.cpp ggml models, pinned: what ``mediasvc models install whisper-<name>`` downloads.

Publisher: Georgi Gerganov's Hugging Face repository ``ggerganov/whisper.cpp`` (MIT), files converted by
whisper.cpp's ``models/convert-pt-to-ggml.py`` from OpenAI's Whisper checkpoints (MIT). Where the pins come from:

- SHA-256: the "Git LFS Details" of each file's page at huggingface.co/ggerganov/whisper.cpp (tiny, tiny.en,
  base, base.en, small.en). ``ggml-small.bin``'s page was not at hand: its SHA-256 is the value several
  independent projects pin for that URL (all agreeing); the size and hash check still refuse any other bytes.
- Sizes in bytes: the exact values other projects pin for these URLs (Hugging Face pages show them rounded:
  77.7 MB, 148 MB, 488 MB, which they match). tiny.en and base are also the sizes this plugin's own
  conversion writes (the same ggml layout).
- whisper.cpp's ``models/README.md`` lists a SHA-1 per file as well (tiny ``bd577a11…``, tiny.en ``c78c86eb…``,
  base ``46570746…``, base.en ``137c4040…``, small ``55356645…``, small.en ``db8a495a…``); SHA-256 is what is
  checked here.
"""

from __future__ import annotations

from mediasvc.plugin import ModelFile

BASE_URL = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main"


def _file(name: str, size: int, sha256: str) -> ModelFile:
    return ModelFile(url=f"{BASE_URL}/ggml-{name}.bin", size=size, sha256=sha256)


OFFICIAL_FILES: dict[str, ModelFile] = {
    "tiny": _file("tiny", 77_691_713, "be07e048e1e599ad46341c8d2a135645097a538221678b7acdd1b1919c6e1b21"),
    "tiny.en": _file("tiny.en", 77_704_715, "921e4cf8686fdd993dcd081a5da5b6c365bfde1162e72b08d75ac75289920b1f"),
    "base": _file("base", 147_951_465, "60ed5bc3dd14eea856493d334349b405782ddcaf0028d4b5df4088345fba2efe"),
    "base.en": _file("base.en", 147_964_211, "a03779c86df3323075f5e796cb2ce5029f00ec8869eee3fdfb897afe36c6d002"),
    "small": _file("small", 487_601_967, "1be3a9b2063867b937e64e2ec7483364a79917e157fa98c5d94b5c1fffea987b"),
    "small.en": _file("small.en", 487_614_201, "c6138d6d58ecc8322097e0f987c32f1be8bb0a18532a3f88f734d1bbf9c41e5d"),
}
