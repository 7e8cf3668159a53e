"""EfficientNet-Lite0 as an ONNX graph, built with ``onnx.helper`` from the PyTorch weights (no torch needed).

The architecture is the one of ``efficientnet-lite-pytorch`` (a port of the TensorFlow Lite models): a 3x3/2 stem
of 32 channels, 16 MBConv blocks without squeeze-excitation, a 1x1 head of 1280 channels, ReLU6 everywhere,
TensorFlow "SAME" padding computed for a fixed 224x224 input, then global average pooling and a linear layer.
Each BatchNorm (eps 1e-3) is folded into the convolution before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mediasvc_analysis_labels.model_files import INPUT_SIZE

BN_EPS = 1e-3


@dataclass(frozen=True)
class Stage:
    repeats: int
    kernel: int
    stride: int
    expand: int
    channels_in: int
    channels_out: int


# (efficientnet_lite_builder.py) r1_k3_s11_e1_i32_o16 ... r1_k3_s11_e6_i192_o320
STAGES = (
    Stage(1, 3, 1, 1, 32, 16),
    Stage(2, 3, 2, 6, 16, 24),
    Stage(2, 5, 2, 6, 24, 40),
    Stage(3, 3, 2, 6, 40, 80),
    Stage(3, 5, 1, 6, 80, 112),
    Stage(4, 5, 2, 6, 112, 192),
    Stage(1, 3, 1, 6, 192, 320),
)


def same_pads(size: int, kernel: int, stride: int) -> list[int]:
    """TensorFlow SAME padding as ONNX pads [top, left, bottom, right] (the extra pixel goes after)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    before = total // 2
    return [before, before, total - before, total - before]


class _Graph:
    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0

    def _name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def conv_bn(self, x: str, conv: str, bn: str, *, size: int, stride: int = 1, groups: int = 1,
                relu6: bool = True) -> str:
        """Conv (+ folded BatchNorm) (+ ReLU6); ``size`` is the input's side in pixels."""
        w = self.weights[f"{conv}.weight"]
        scale = self.weights[f"{bn}.weight"] / np.sqrt(self.weights[f"{bn}.running_var"] + BN_EPS)
        folded_w = w * scale[:, None, None, None]
        folded_b = self.weights[f"{bn}.bias"] - self.weights[f"{bn}.running_mean"] * scale
        kernel = w.shape[-1]
        out = self._name(conv)
        self.nodes.append(helper.make_node(
            "Conv", [x, self.const(f"{conv}.w", folded_w), self.const(f"{conv}.b", folded_b)], [out],
            kernel_shape=[kernel, kernel], strides=[stride, stride], group=groups,
            pads=same_pads(size, kernel, stride),
        ))
        if not relu6:
            return out
        clipped = self._name(f"{conv}_relu6")
        self.nodes.append(helper.make_node("Clip", [out, "zero", "six"], [clipped]))
        return clipped

    def add(self, a: str, b: str) -> str:
        out = self._name("add")
        self.nodes.append(helper.make_node("Add", [a, b], [out]))
        return out


def build_model(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The graph: input ``image`` [N, 3, 224, 224] (normalised), output ``logits`` [N, 1000]."""
    g = _Graph(weights)
    g.initializers += [numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
                       numpy_helper.from_array(np.array(6.0, np.float32), "six")]
    size = INPUT_SIZE
    x = g.conv_bn("image", "_conv_stem", "_bn0", size=size, stride=2)
    size = math.ceil(size / 2)
    index = 0
    for stage in STAGES:
        for repeat in range(stage.repeats):
            stride = stage.stride if repeat == 0 else 1
            channels_in = stage.channels_in if repeat == 0 else stage.channels_out
            block = f"_blocks.{index}"
            inputs = x
            if stage.expand != 1:
                x = g.conv_bn(x, f"{block}._expand_conv", f"{block}._bn0", size=size)
            channels = channels_in * stage.expand
            x = g.conv_bn(x, f"{block}._depthwise_conv", f"{block}._bn1", size=size, stride=stride, groups=channels)
            size = math.ceil(size / stride)
            x = g.conv_bn(x, f"{block}._project_conv", f"{block}._bn2", size=size, relu6=False)
            if stride == 1 and channels_in == stage.channels_out:
                x = g.add(x, inputs)
            index += 1
    x = g.conv_bn(x, "_conv_head", "_bn1", size=size)
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    g.nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], axis=1))
    g.nodes.append(helper.make_node("Gemm", ["features", g.const("fc.w", weights["_fc.weight"]),
                                             g.const("fc.b", weights["_fc.bias"])], ["logits"], transB=1))
    graph = helper.make_graph(
        g.nodes, "efficientnet_lite0",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="mediasvc")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def export(weights: dict[str, np.ndarray], target: Path) -> Path:
    """Write the model to ``target`` atomically (a partial file never looks installed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    onnx.save_model(build_model(weights), str(partial))
    partial.replace(target)
    return target
