"""The analyzer plugins on their own: labels (torch-free EfficientNet-Lite0 export), text (RapidOCR with its
bundled models), faces (Haar cascade), moderation (open_nsfw) — on generated images and scikit-image's photos."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from PIL import Image

from mediasvc_analysis_faces.analyzer import FacesAnalyzer
from mediasvc_analysis_labels.analyzer import CLASS_NAMES, LabelsAnalyzer
from mediasvc_analysis_labels.model_files import MODEL_NAME, SPEC, model_file
from mediasvc_analysis_labels.torch_weights import load_state_dict
from mediasvc_analysis_moderation.analyzer import ModerationAnalyzer
from mediasvc_analysis_text.analyzer import TextAnalyzer
from mediasvc.errors import ModelMissing
from mediasvc.settings import load_settings
from tests.analysis_media import photo, shapes_image, text_image


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The labels model prepared once, as `mediasvc models install labels-efficientnet-lite0` does."""
    folder = tmp_path_factory.mktemp("models")
    settings = load_settings(env={}, models_dir=str(folder))
    assert SPEC.locate(settings) is None
    assert SPEC.install(settings) == model_file(settings) == SPEC.locate(settings)
    return folder


@pytest.fixture(scope="session")
def labels(models_dir: Path) -> LabelsAnalyzer:
    return LabelsAnalyzer(load_settings(env={}, models_dir=str(models_dir)))


@pytest.fixture(scope="session")
def text() -> TextAnalyzer:
    return TextAnalyzer()


@pytest.fixture(scope="session")
def faces() -> FacesAnalyzer:
    return FacesAnalyzer()


@pytest.fixture(scope="session")
def moderation() -> ModerationAnalyzer:
    return ModerationAnalyzer()


# --- labels ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, expected", [
    ("chelsea", {"tabby", "tiger cat", "Egyptian cat"}),
    ("coffee", {"espresso", "cup", "coffee mug"}),
    ("rocket", {"missile", "projectile", "space shuttle"}),
])
def test_labels_top_results_on_real_photos(labels, name, expected):
    result = labels.analyze(photo(name), max_results=5)
    top = [f.name for f in result.findings]
    assert top[0] in expected, top
    assert len(expected & set(top)) >= 2, top
    assert result.analysis_type == "labels" and result.model == "efficientnet-lite0"
    assert all(0 < f.confidence <= 1 for f in result.findings)
    assert [f.confidence for f in result.findings] == sorted((f.confidence for f in result.findings), reverse=True)


def test_labels_carry_broader_parents_and_honour_limits(labels):
    cat = labels.analyze(photo("chelsea"), max_results=3)
    assert {"cat", "mammal", "animal"} <= set(cat.findings[0].parents)
    assert len(cat.findings) == 3
    confident = labels.analyze(photo("coffee"), max_results=10, min_confidence=0.5)
    assert [f.name for f in confident.findings] == ["espresso"]
    assert len(CLASS_NAMES) == 1000 and CLASS_NAMES[281] == "tabby"


def test_labels_model_missing_names_the_install_command(tmp_path):
    analyzer = LabelsAnalyzer(load_settings(env={}, models_dir=str(tmp_path)))
    with pytest.raises(ModelMissing, match=f"mediasvc models install {MODEL_NAME}") as info:
        analyzer.analyze(photo("coffee"))
    assert info.value.status_code == 503 and info.value.code == "model_missing"


def test_weights_reader_refuses_code_in_a_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        for value in (0x1950A86A20F9469CFC6C, 1001, {}):
            pickle.dump(value, fh)
        pickle.dump({"x": Evil()}, fh)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        load_state_dict(path)


# --- text ------------------------------------------------------------------------------------------------------


def _read(text_analyzer, image) -> str:
    return " ".join(f.name for f in text_analyzer.analyze(image).findings)


def test_text_is_read_with_confidence_and_box(text):
    result = text.analyze(text_image("SUMMER SALE 50%"))
    assert _compact(" ".join(f.name for f in result.findings)) == "SUMMERSALE50%"
    first = result.findings[0]
    assert first.confidence > 0.9
    assert first.box is not None and 20 <= first.box.x <= 80 and first.box.width > 300


@pytest.mark.parametrize("angle", [20, 90])
def test_rotated_text_is_read(text, angle):
    assert "SALE" in _read(text, text_image("BIG SALE", angle=angle))


def test_no_text_on_shapes(text):
    assert text.analyze(shapes_image()).findings == []


def _compact(value: str) -> str:
    return value.replace(" ", "")


# --- faces and moderation --------------------------------------------------------------------------------------


def test_face_found_on_the_astronaut_and_not_on_the_cat_or_the_cup(faces):
    found = faces.analyze(photo("astronaut")).findings
    assert len(found) == 1
    box = found[0].box
    assert 150 <= box.x <= 210 and 40 <= box.y <= 100 and 70 <= box.width <= 130  # her face, top left of centre
    assert found[0].confidence > 0.5
    assert faces.analyze(photo("coffee")).findings == []
    assert faces.analyze(shapes_image()).findings == []


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket"])
def test_benign_photos_score_low_on_moderation(moderation, name):
    result = moderation.analyze(photo(name))
    assert result.scores["nsfw"] < 0.2
    assert result.scores["nsfw"] + result.scores["sfw"] == pytest.approx(1.0, abs=1e-3)
    assert result.findings[0].name == "sfw"


# --- odd inputs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("image", [
    Image.new("L", (120, 80), 128),
    Image.new("RGBA", (64, 64), (255, 0, 0, 0)),
    Image.new("RGB", (1, 1)),
    Image.new("RGB", (3000, 2), "white"),
    Image.new("P", (40, 40)),
], ids=["grayscale", "rgba", "1x1", "3000x2", "palette"])
def test_every_analyzer_survives_odd_inputs(labels, text, faces, moderation, image):
    for analyzer in (labels, text, faces, moderation):
        result = analyzer.analyze(image, max_results=3)
        assert result.analysis_type == analyzer.name
        assert len(result.findings) <= 3


def test_models_load_and_run_without_any_network(monkeypatch, tmp_path):
    """RapidOCR is given its bundled model files and the labels export reads only the installed package: with
    every connection refused, a fresh engine still reads text and the model still installs."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert "SALE" in _read(TextAnalyzer(), text_image("SALE", size=(400, 200)))
    settings = load_settings(env={}, models_dir=str(tmp_path))
    assert SPEC.install(settings).is_file()
