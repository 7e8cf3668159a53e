"""Capture devices: the real sysfs/procfs parsing run on directory trees written here (V4L2 and ALSA layouts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediasvc.api.devices import DeviceRoots, list_cameras, list_microphones
from mediasvc.app import create_app
from tests.conftest import serve_in_process

CARDS = """\
 0 [PCH            ]: HDA-Intel - HDA Intel PCH
                      HDA Intel PCH at 0xf7f10000 irq 32
 1 [C920           ]: USB-Audio - HD Pro Webcam C920
                      HD Pro Webcam C920 at usb-0000:00:14.0-1, high speed
 2 [NVidia         ]: HDA-Intel - HDA NVidia
                      HDA NVidia at 0xf7080000 irq 17
"""

PCM = """\
00-00: ALC892 Analog : ALC892 Analog : playback 1 : capture 1
00-01: ALC892 Digital : ALC892 Digital : playback 1
01-00: USB Audio : USB Audio : capture 1
02-03: HDMI 0 : HDMI 0 : playback 1
"""


def fake_tree(root: Path) -> DeviceRoots:
    v4l = root / "sys" / "class" / "video4linux"
    for name, label, index in (("video0", "HD Pro Webcam C920", "0"), ("video1", "HD Pro Webcam C920", "1"),
                               ("video10", "Integrated Camera: Integrated C", "0"), ("v4l-subdev0", "sensor", "0")):
        (v4l / name).mkdir(parents=True)
        (v4l / name / "name").write_text(label + "\n")
        (v4l / name / "index").write_text(index + "\n")
    asound = root / "proc" / "asound"
    asound.mkdir(parents=True)
    (asound / "cards").write_text(CARDS)
    (asound / "pcm").write_text(PCM)
    dev = root / "dev"
    dev.mkdir()
    (dev / "video0").write_text("not a device node")  # a regular file is never ioctl'd: sysfs decides
    return DeviceRoots(sys=root / "sys", proc=root / "proc", dev=dev)


def test_parsing_finds_capture_devices_only(tmp_path):
    roots = fake_tree(tmp_path)
    cameras = list_cameras(roots)
    assert [(c.id, c.label, c.path) for c in cameras] == [
        ("video0", "HD Pro Webcam C920", str(roots.dev / "video0")),  # video1 is its metadata node
        ("video10", "Integrated Camera: Integrated C", str(roots.dev / "video10")),  # natural order: 0 < 10
    ]
    assert {c.kind for c in cameras} == {"videoinput"}
    microphones = list_microphones(roots)
    assert [(m.id, m.label, m.card, m.driver, m.path) for m in microphones] == [
        ("hw:0,0", "HDA Intel PCH: ALC892 Analog", "PCH", "HDA-Intel", str(roots.dev / "snd" / "pcmC0D0c")),
        ("hw:1,0", "HD Pro Webcam C920: USB Audio", "C920", "USB-Audio", str(roots.dev / "snd" / "pcmC1D0c")),
    ]
    assert {m.kind for m in microphones} == {"audioinput"}


def test_no_devices_is_an_empty_list(tmp_path):
    missing = DeviceRoots(sys=tmp_path / "nope", proc=tmp_path / "nope", dev=tmp_path / "nope")
    assert list_cameras(missing) == []
    assert list_microphones(missing) == []
    (tmp_path / "proc" / "asound").mkdir(parents=True)
    (tmp_path / "proc" / "asound" / "cards").write_text("--- no soundcards ---\n")
    (tmp_path / "sys" / "class" / "video4linux").mkdir(parents=True)
    empty = DeviceRoots(sys=tmp_path / "sys", proc=tmp_path / "proc", dev=tmp_path / "dev")
    assert list_cameras(empty) == []
    assert list_microphones(empty) == []


@pytest.mark.parametrize("populated", [True, False])
async def test_endpoints(settings, tmp_path, populated):
    from mediasvc.auth import create_api_key

    app = create_app(settings)
    app.state.device_roots = fake_tree(tmp_path) if populated else DeviceRoots(
        sys=tmp_path / "sys", proc=tmp_path / "proc", dev=tmp_path / "dev")
    async with serve_in_process(app) as http:
        key, _ = await create_api_key("devices-tenant")
        auth = {"Authorization": f"Bearer {key}"}
        everything = await http.get("/api/v1/devices", headers=auth)
        cameras = await http.get("/api/v1/devices/cameras", headers=auth)
        microphones = await http.get("/api/v1/devices/microphones", headers=auth)
        for response in (everything, cameras, microphones):
            assert response.status_code == 200, response.text
        if populated:
            assert [d["id"] for d in cameras.json()] == ["video0", "video10"]
            assert [d["id"] for d in microphones.json()] == ["hw:0,0", "hw:1,0"]
            assert everything.json() == cameras.json() + microphones.json()
            assert set(cameras.json()[0]) == {"id", "kind", "label", "path", "driver", "card"}
        else:
            assert everything.json() == cameras.json() == microphones.json() == []
        unauthenticated = await http.get("/api/v1/devices")
        assert unauthenticated.status_code == 401
        assert unauthenticated.json()["error"]["code"] == "unauthorized"
