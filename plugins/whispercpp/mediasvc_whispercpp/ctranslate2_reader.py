"""Read a CTranslate2 ``model.bin`` (binary version 6) with numpy, without CTranslate2 or torch.

The layout, as ``ctranslate2/specs/model_spec.py`` (``ModelSpec._serialize``) writes it, all little-endian:

    u32 binary_version, string spec_name, u32 spec_revision, u32 n_variables,
    n_variables * (string name, u8 rank, u32 dims[rank], u8 dtype, u32 n_bytes, bytes data),
    u32 n_aliases, n_aliases * (string alias, string target)

where ``string`` is a u16 length (including a trailing NUL) and the UTF-8 bytes with the NUL. ``dtype`` follows
``DataType`` in ``include/ctranslate2/types.h``: float32, int8, int16, int32, float16, bfloat16.

A model may be split into parts (``model.bin.part1``, ``model.bin.part2``…) that join by plain concatenation.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

import numpy as np

SUPPORTED_BINARY_VERSION = 6
_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # None: bfloat16, which numpy lacks


class CTranslate2FormatError(ValueError):
    """The file is not a CTranslate2 model this reader understands."""


class _JoinedParts:
    """Read several files as one stream (a model split into parts)."""

    def __init__(self, files: Sequence[BinaryIO]) -> None:
        self._files = list(files)
        self._index = 0

    def read(self, size: int) -> bytes:
        chunks: list[bytes] = []
        while size > 0 and self._index < len(self._files):
            chunk = self._files[self._index].read(size)
            if not chunk:
                self._index += 1
                continue
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)


class _Reader:
    def __init__(self, stream: _JoinedParts) -> None:
        self._stream = stream

    def exact(self, size: int) -> bytes:
        data = self._stream.read(size)
        if len(data) != size:
            raise CTranslate2FormatError("model.bin ends early: truncated file or a missing part")
        return data

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.exact(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        length = self.unpack("H")
        return self.exact(length)[:-1].decode("utf-8")


def read_variables(parts: Sequence[Path]) -> tuple[str, dict[str, np.ndarray]]:
    """The spec name and every variable (aliases resolved) of the model made of ``parts`` joined in order."""
    with ExitStack() as stack:
        files = [stack.enter_context(open(part, "rb")) for part in parts]
        reader = _Reader(_JoinedParts(files))
        return _read(reader)


def _read(reader: _Reader) -> tuple[str, dict[str, np.ndarray]]:
    version = reader.unpack("I")
    if version != SUPPORTED_BINARY_VERSION:
        raise CTranslate2FormatError(f"CTranslate2 binary version {version}; this reader knows {SUPPORTED_BINARY_VERSION}")
    spec_name = reader.string()
    reader.unpack("I")  # spec revision
    variables = dict(_variables(reader, reader.unpack("I")))
    for _ in range(reader.unpack("I")):
        alias, target = reader.string(), reader.string()
        variables[alias] = variables[target]
    return spec_name, variables


def _variables(reader: _Reader, count: int) -> Iterator[tuple[str, np.ndarray]]:
    for _ in range(count):
        name = reader.string()
        shape = tuple(reader.unpack("I") for _ in range(reader.unpack("B")))
        dtype_id = reader.unpack("B")
        data = reader.exact(reader.unpack("I"))
        if dtype_id >= len(_DTYPES) or _DTYPES[dtype_id] is None:
            raise CTranslate2FormatError(f"variable {name!r} has an unsupported dtype id {dtype_id}")
        yield name, np.frombuffer(data, dtype=_DTYPES[dtype_id]).reshape(shape)
