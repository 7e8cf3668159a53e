"""Dominant colours: k-means (numpy, deterministic start) on a 64x64 thumbnail, named by the nearest of a small
palette of common colour names."""

from __future__ import annotations

import numpy as np
from PIL import Image

import msgspec

PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0), "white": (255, 255, 255), "gray": (128, 128, 128), "silver": (192, 192, 192),
    "red": (220, 20, 60), "maroon": (128, 0, 0), "orange": (255, 140, 0), "yellow": (255, 215, 0),
    "olive": (128, 128, 0), "green": (34, 139, 34), "lime": (50, 205, 50), "teal": (0, 128, 128),
    "cyan": (0, 200, 220), "blue": (30, 80, 200), "navy": (0, 0, 128), "purple": (128, 0, 128),
    "magenta": (220, 0, 220), "pink": (255, 170, 190), "brown": (139, 69, 19), "beige": (225, 205, 165),
}


class DominantColor(msgspec.Struct):
    hex: str
    name: str
    fraction: float  # share of the thumbnail's pixels closest to this colour


def colour_name(rgb: np.ndarray) -> str:
    names = list(PALETTE)
    palette = np.array([PALETTE[n] for n in names], dtype=np.float64)
    return names[int(np.argmin(((palette - rgb) ** 2).sum(axis=1)))]


def dominant_colors(image: Image.Image, count: int = 5, iterations: int = 12) -> list[DominantColor]:
    pixels = np.asarray(image.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR),
                        dtype=np.float64).reshape(-1, 3)
    k = min(count, len(np.unique(pixels, axis=0)))
    # deterministic start: pixels spread along the brightness order
    order = np.argsort(pixels.sum(axis=1))
    centres = pixels[order[np.linspace(0, len(order) - 1, k).astype(int)]].copy()
    for _ in range(iterations):
        labels = np.argmin(((pixels[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
        for j in range(k):
            members = pixels[labels == j]
            if len(members):
                centres[j] = members.mean(axis=0)
    labels = np.argmin(((pixels[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
    shares = np.bincount(labels, minlength=k) / len(pixels)
    found: dict[str, DominantColor] = {}
    for j in np.argsort(-shares):
        if shares[j] <= 0:
            continue
        rgb = np.clip(np.rint(centres[j]), 0, 255).astype(int)
        hex_value = "#{:02x}{:02x}{:02x}".format(*rgb)
        name = colour_name(centres[j])
        if name in found:  # two clusters with one name: one entry, shares added
            found[name].fraction = round(found[name].fraction + float(shares[j]), 4)
            continue
        found[name] = DominantColor(hex=hex_value, name=name, fraction=round(float(shares[j]), 4))
    return sorted(found.values(), key=lambda c: c.fraction, reverse=True)
