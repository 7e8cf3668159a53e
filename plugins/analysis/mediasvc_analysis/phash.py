"""Perceptual hashes (64 bits, numpy only) and Hamming distance.

pHash: 32x32 grayscale, 2-D DCT-II, the 8x8 lowest frequencies, each bit = coefficient above their median (the DC
term excluded from the median). dHash: 9x8 grayscale, each bit = a pixel brighter than its right neighbour.
Both survive resizing and recompression; stored as signed 64-bit integers (PostgreSQL bigint).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

HASH_BITS = 64


@lru_cache(maxsize=1)
def _dct_matrix(n: int = 32) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    matrix[0] /= np.sqrt(2)
    return matrix


def _bits_to_int(bits: np.ndarray) -> int:
    value = 0
    for bit in bits.ravel():
        value = (value << 1) | int(bit)
    return to_signed(value)


def to_signed(value: int) -> int:
    return value - (1 << HASH_BITS) if value >= 1 << (HASH_BITS - 1) else value


def to_unsigned(value: int) -> int:
    return value & ((1 << HASH_BITS) - 1)


def _gray_64(image: Image.Image) -> Image.Image:
    """A 64x64 grayscale copy by box averaging (cheap on a large image; both hashes start from it)."""
    factor = min(image.size) // 64
    if factor > 1:  # integer box reduction first: the cheapest way down from megapixels
        image = image.reduce(factor)
    return image.resize((64, 64), Image.Resampling.BOX).convert("L")


def phash(image: Image.Image) -> int:
    pixels = np.asarray(_gray_64(image).resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    dct = _dct_matrix() @ pixels @ _dct_matrix().T
    low = dct[:8, :8]
    median = np.median(low.ravel()[1:])
    return _bits_to_int(low > median)


def dhash(image: Image.Image) -> int:
    pixels = np.asarray(_gray_64(image).resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    return _bits_to_int(pixels[:, 1:] > pixels[:, :-1])


def hashes(image: Image.Image) -> tuple[int, int]:
    """(pHash, dHash) from one shared reduction."""
    gray = _gray_64(image)
    return phash(gray), dhash(gray)


def hamming(a: int, b: int) -> int:
    return (to_unsigned(a) ^ to_unsigned(b)).bit_count()


def hex64(value: int | None) -> str | None:
    return None if value is None else f"{to_unsigned(value):016x}"
