"""Read a PyTorch ``.pth`` state dict into numpy arrays without torch.

Both of torch's formats are handled: the zip archive (``data.pkl`` + ``data/N`` raw storages, torch ≥ 1.6) and the
legacy stream (magic, protocol, system info, the pickled dict, the storage keys, then each storage's raw bytes).
The unpickler is restricted: it resolves only tensor rebuilding, storage types and ``OrderedDict``; any other global
in the file is refused, so a hostile file cannot run code.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class _TensorRef:
    """A tensor whose storage bytes are read after the pickle (legacy format) or on demand (zip format)."""

    def __init__(self, storage_key: str, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage_key, self.offset, self.size, self.stride = storage_key, offset, tuple(size), tuple(stride)

    def materialize(self, storages: dict[str, np.ndarray]) -> np.ndarray:
        flat = storages[self.storage_key]
        if not self.size:
            return flat[self.offset].copy()
        base = flat[self.offset:]
        strides = tuple(s * flat.itemsize for s in self.stride)
        return np.lib.stride_tricks.as_strided(base, shape=self.size, strides=strides).copy()


def _rebuild_tensor_v2(storage: tuple[str, _StorageType], offset: int, size: Any, stride: Any,
                       *_rest: Any) -> _TensorRef:
    return _TensorRef(storage[0], offset, size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, storage_types: dict[str, _StorageType]) -> None:
        super().__init__(file)
        self.storage_types = storage_types

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, pid: Any) -> tuple[str, _StorageType]:
        # legacy: ('storage', type, key, location, size[, view]); zip: ('storage', type, key, location, numel)
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        self.storage_types[key] = storage_type
        return key, storage_type


def load_state_dict(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of the state dict at ``path`` as a numpy array (same names, same shapes)."""
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    with open(path, "rb") as fh:
        return _load_legacy(fh)


def _load_legacy(fh: BinaryIO) -> dict[str, np.ndarray]:
    if pickle.load(fh) != LEGACY_MAGIC:  # plain ints and dicts: no globals to resolve
        raise ValueError("not a PyTorch weights file (bad magic number)")
    pickle.load(fh)  # protocol version
    pickle.load(fh)  # system info
    storage_types: dict[str, _StorageType] = {}
    state = _RestrictedUnpickler(fh, storage_types).load()
    keys = _RestrictedUnpickler(fh, storage_types).load()
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        (count,) = struct.unpack("<q", fh.read(8))
        dtype = storage_types[key].dtype
        storages[key] = np.frombuffer(fh.read(count * dtype.itemsize), dtype=dtype)
    return {name: ref.materialize(storages) for name, ref in state.items() if isinstance(ref, _TensorRef)}


def _load_zip(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = next(n for n in names if n.endswith("data.pkl"))
        prefix = pkl[: -len("data.pkl")]
        storage_types: dict[str, _StorageType] = {}
        state = _RestrictedUnpickler(io.BytesIO(archive.read(pkl)), storage_types).load()
        storages = {key: np.frombuffer(archive.read(f"{prefix}data/{key}"), dtype=t.dtype)
                    for key, t in storage_types.items()}
    return {name: ref.materialize(storages) for name, ref in state.items() if isinstance(ref, _TensorRef)}
