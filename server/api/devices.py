"""Capture devices visible to the server: V4L2 video capture devices (cameras) and ALSA capture PCMs (microphones).

Read from sysfs and procfs; the roots are parameters (``DeviceRoots``) so another tree can be read, and the app may
carry its own in ``app.state.device_roots``. A missing or unreadable file means no device, never an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec
from litestar import Controller, Request, get

DeviceKind = Literal["videoinput", "audioinput"]

VIDIOC_QUERYCAP = 0x80685600  # _IOR('V', 0, struct v4l2_capability), 104 bytes
V4L2_CAP_VIDEO_CAPTURE = 0x00000001
V4L2_CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
V4L2_CAP_DEVICE_CAPS = 0x80000000


@dataclass(frozen=True)
class DeviceRoots:
    sys: Path = Path("/sys")
    proc: Path = Path("/proc")
    dev: Path = Path("/dev")


class CaptureDevice(msgspec.Struct):
    id: str  # video0, hw:1,0
    kind: DeviceKind  # as the browser names them
    label: str
    path: str  # the device node
    driver: str = ""
    card: str = ""  # ALSA card id, or the V4L2 device's bus/driver description


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _querycap(node: Path) -> bool | None:
    """True/False when the node answers VIDIOC_QUERYCAP (capture-capable or not), None when it cannot be asked."""
    try:
        if not stat.S_ISCHR(node.stat().st_mode):
            return None
        fd = os.open(node, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        buffer = bytearray(104)
        fcntl.ioctl(fd, VIDIOC_QUERYCAP, buffer)
    except OSError:
        return None
    finally:
        os.close(fd)
    capabilities, device_caps = struct.unpack_from("<II", buffer, 84)
    caps = device_caps if capabilities & V4L2_CAP_DEVICE_CAPS else capabilities
    return bool(caps & (V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_VIDEO_CAPTURE_MPLANE))


def list_cameras(roots: DeviceRoots = DeviceRoots()) -> list[CaptureDevice]:
    """V4L2 nodes from ``/sys/class/video4linux/*``. Capture capability comes from the device itself when it can be
    asked; otherwise (no access, not a real node) the node with ``index`` 0 of a device is taken as its capture
    node (the others are metadata or output nodes)."""
    base = roots.sys / "class" / "video4linux"
    try:
        entries = sorted(base.iterdir(), key=lambda p: _natural(p.name))
    except OSError:
        return []
    cameras: list[CaptureDevice] = []
    for entry in entries:
        if not re.fullmatch(r"video\d+", entry.name):
            continue
        name = (_read(entry / "name") or "").strip()
        node = roots.dev / entry.name
        capture = _querycap(node)
        if capture is None:
            index = (_read(entry / "index") or "0").strip()
            capture = index in ("", "0")
        if not capture:
            continue
        driver = ""
        with contextlib.suppress(OSError):
            driver = os.path.basename(os.readlink(entry / "device" / "driver"))
        cameras.append(CaptureDevice(id=entry.name, kind="videoinput", label=name or entry.name, path=str(node),
                                     driver=driver))
    return cameras


_CARD_LINE = re.compile(r"^\s*(\d+)\s+\[([^\]]*)\]:\s*(\S+)\s+-\s+(.*)$")
_PCM_LINE = re.compile(r"^(\d+)-(\d+):\s*(.*)$")


def _alsa_cards(proc: Path) -> dict[int, dict[str, str]]:
    cards: dict[int, dict[str, str]] = {}
    for line in (_read(proc / "asound" / "cards") or "").splitlines():
        match = _CARD_LINE.match(line)
        if match:
            number, card_id, driver, name = match.groups()
            cards[int(number)] = {"id": card_id.strip(), "driver": driver.strip(), "name": name.strip()}
    return cards


def list_microphones(roots: DeviceRoots = DeviceRoots()) -> list[CaptureDevice]:
    """ALSA PCM devices with capture streams, from ``/proc/asound/pcm`` and ``/proc/asound/cards``."""
    cards = _alsa_cards(roots.proc)
    microphones: list[CaptureDevice] = []
    for line in (_read(roots.proc / "asound" / "pcm") or "").splitlines():
        match = _PCM_LINE.match(line.strip())
        if not match:
            continue
        card_no, device_no, rest = int(match.group(1)), int(match.group(2)), match.group(3)
        parts = [p.strip() for p in rest.split(" : ")]
        if not any(re.fullmatch(r"capture \d+", p) for p in parts):
            continue
        pcm_name = parts[1] if len(parts) > 1 and parts[1] else (parts[0] if parts else "")
        card = cards.get(card_no, {})
        label = f"{card['name']}: {pcm_name}" if card.get("name") else pcm_name or f"card {card_no}"
        microphones.append(CaptureDevice(
            id=f"hw:{card_no},{device_no}", kind="audioinput", label=label,
            path=str(roots.dev / "snd" / f"pcmC{card_no}D{device_no}c"), driver=card.get("driver", ""),
            card=card.get("id", ""),
        ))
    return microphones


def _natural(name: str) -> tuple[str, int]:
    match = re.match(r"(\D*)(\d+)$", name)
    return (match.group(1), int(match.group(2))) if match else (name, -1)


def _roots(request: Request[Any, Any, Any]) -> DeviceRoots:
    roots = request.app.state.get("device_roots")
    return roots if isinstance(roots, DeviceRoots) else DeviceRoots()


class DeviceController(Controller):
    path = "/devices"
    tags = ["devices"]

    @get("/", summary="Capture devices visible to the server (cameras, then microphones)")
    async def list_devices(self, request: Request[Any, Any, Any]) -> list[CaptureDevice]:
        roots = _roots(request)
        cameras, microphones = await asyncio.gather(asyncio.to_thread(list_cameras, roots),
                                                    asyncio.to_thread(list_microphones, roots))
        return [*cameras, *microphones]

    @get("/cameras", summary="V4L2 video capture devices")
    async def cameras(self, request: Request[Any, Any, Any]) -> list[CaptureDevice]:
        return await asyncio.to_thread(list_cameras, _roots(request))

    @get("/microphones", summary="ALSA capture devices")
    async def microphones(self, request: Request[Any, Any, Any]) -> list[CaptureDevice]:
        return await asyncio.to_thread(list_microphones, _roots(request))
