"""Write a whisper.cpp ggml model from Whisper weights in CTranslate2 format.

The output is byte for byte the layout of whisper.cpp's ``models/convert-pt-to-ggml.py`` (f16), so a conversion
of the same weights has exactly the size of the official ``ggml-<name>.bin`` (tiny.en 77,704,715 bytes, base
147,951,465). All little-endian int32 unless noted:

1. header: magic ``0x67676d6c`` ("ggml"), n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
   n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype (1 = f16);
2. mel filters: n_mels, n_fft_bins, then float32 ``[n_mels][n_fft_bins]`` (see ``mel.py``);
3. vocabulary: count, then each regular token as its byte length and raw bytes (GPT-2 byte-level BPE, decoded
   from the printable-unicode form the tokenizer files use). Special tokens are not written: whisper.cpp adds
   them itself up to n_vocab. One exception keeps the official sizes: the English-only files were made from
   GPT-2's ``vocab.json``, which lists ``<|endoftext|>`` as a token (see whisper.cpp PR #725), so it is written
   for English-only models (n_vocab 51864) and not for multilingual ones;
4. tensors, in the order of OpenAI's PyTorch state dict: n_dims, name length, ftype (0 f32, 1 f16), dims
   innermost first, the name, the data. Vectors, conv biases (reshaped ``[n] -> [n, 1]``) and both positional
   embeddings are f32; every matrix is f16.

CTranslate2 stores attention projections fused (self-attention q|k|v, cross-attention k|v, with a zero key bias
that Whisper does not have); they are split here into Whisper's ``query``/``key``/``value``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mediasvc_whispercpp.ctranslate2_reader import read_variables
from mediasvc_whispercpp.mel import mel_filters

GGML_MAGIC = 0x67676D6C
END_OF_TEXT = "<|endoftext|>"
ENGLISH_ONLY_VOCAB = 51864  # multilingual models have 51865 (one more language token)
_F32_MATRICES = ("encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding",
                 "decoder.positional_embedding")


@dataclass(frozen=True)
class CTranslate2Whisper:
    """Where a CTranslate2 Whisper model lives: the ``model.bin`` part(s) and ``vocabulary.txt``."""

    parts: tuple[Path, ...]
    vocabulary: Path


def convert(source: CTranslate2Whisper, output: Path) -> Path:
    """Write ``output`` (atomically: a temporary file renamed into place) and return it."""
    spec_name, variables = read_variables(source.parts)
    if spec_name != "WhisperSpec":
        raise ValueError(f"{source.parts[0]} holds a {spec_name}, not a Whisper model")
    hparams = hyperparameters(variables)
    english_only = hparams["n_vocab"] == ENGLISH_ONLY_VOCAB
    tokens = regular_tokens(source.vocabulary, include_end_of_text=english_only)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + f".{os.getpid()}.partial")
    try:
        with open(partial, "wb") as out:
            _write_header(out, hparams)
            _write_mel_filters(out, mel_filters(hparams["n_mels"]))
            _write_vocabulary(out, tokens)
            for name, tensor in whisper_tensors(variables, hparams):
                _write_tensor(out, name, tensor)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    return output


def hyperparameters(variables: dict[str, np.ndarray]) -> dict[str, int]:
    """Whisper's ``ModelDimensions``, read off the tensor shapes."""

    def layers(prefix: str) -> int:
        return sum(1 for name in variables if name.startswith(prefix) and name.endswith("/ffn/linear_0/weight"))

    return {
        "n_vocab": variables["decoder/embeddings/weight"].shape[0],
        "n_audio_ctx": variables["encoder/position_encodings/encodings"].shape[0],
        "n_audio_state": variables["encoder/position_encodings/encodings"].shape[1],
        "n_audio_head": int(variables["encoder/num_heads"]),
        "n_audio_layer": layers("encoder/layer_"),
        "n_text_ctx": variables["decoder/position_encodings/encodings"].shape[0],
        "n_text_state": variables["decoder/position_encodings/encodings"].shape[1],
        "n_text_head": int(variables["decoder/num_heads"]),
        "n_text_layer": layers("decoder/layer_"),
        "n_mels": variables["encoder/conv1/weight"].shape[1],
    }


def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable-unicode stand-in for each byte, reversed (``bytes_to_unicode`` in gpt-2's encoder.py)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes)}


def regular_tokens(vocabulary: Path, *, include_end_of_text: bool = False) -> list[bytes]:
    """The BPE tokens before ``<|endoftext|>`` (one per line in CTranslate2's vocabulary.txt), as raw bytes."""
    decoder = _byte_decoder()
    tokens: list[bytes] = []
    for line in vocabulary.read_text(encoding="utf-8").split("\n"):
        if line == END_OF_TEXT:
            return [*tokens, END_OF_TEXT.encode()] if include_end_of_text else tokens
        tokens.append(bytes(decoder[char] for char in line))
    raise ValueError(f"{vocabulary} has no {END_OF_TEXT} token")


def whisper_tensors(variables: dict[str, np.ndarray], hparams: dict[str, int]) -> Iterator[tuple[str, np.ndarray]]:
    """(OpenAI name, array) pairs in the PyTorch state-dict order."""
    yield "encoder.positional_embedding", variables["encoder/position_encodings/encodings"]
    for conv in ("conv1", "conv2"):
        yield f"encoder.{conv}.weight", variables[f"encoder/{conv}/weight"]
        yield f"encoder.{conv}.bias", variables[f"encoder/{conv}/bias"].reshape(-1, 1)
    for i in range(hparams["n_audio_layer"]):
        layer = f"encoder/layer_{i}"
        yield from _self_attention(variables, f"encoder.blocks.{i}", layer)
        yield from _mlp(variables, f"encoder.blocks.{i}", layer)
    yield from _layer_norm(variables, "encoder.ln_post", "encoder/layer_norm")
    yield "decoder.positional_embedding", variables["decoder/position_encodings/encodings"]
    yield "decoder.token_embedding.weight", variables["decoder/embeddings/weight"]
    for i in range(hparams["n_text_layer"]):
        block, layer = f"decoder.blocks.{i}", f"decoder/layer_{i}"
        yield from _self_attention(variables, block, layer)
        yield from _cross_attention(variables, block, layer)
        yield from _mlp(variables, block, layer)
    yield from _layer_norm(variables, "decoder.ln", "decoder/layer_norm")


def _linear(variables: dict[str, np.ndarray], name: str, source: str, rows: slice = slice(None),
            bias: bool = True) -> Iterator[tuple[str, np.ndarray]]:
    yield f"{name}.weight", variables[f"{source}/weight"][rows]
    if bias:
        yield f"{name}.bias", variables[f"{source}/bias"][rows]


def _layer_norm(variables: dict[str, np.ndarray], name: str, source: str) -> Iterator[tuple[str, np.ndarray]]:
    yield f"{name}.weight", variables[f"{source}/gamma"]
    yield f"{name}.bias", variables[f"{source}/beta"]


def _self_attention(variables: dict[str, np.ndarray], block: str, layer: str) -> Iterator[tuple[str, np.ndarray]]:
    source = f"{layer}/self_attention"
    d = variables[f"{source}/linear_1/weight"].shape[0]
    yield from _linear(variables, f"{block}.attn.query", f"{source}/linear_0", slice(0, d))
    yield from _linear(variables, f"{block}.attn.key", f"{source}/linear_0", slice(d, 2 * d), bias=False)
    yield from _linear(variables, f"{block}.attn.value", f"{source}/linear_0", slice(2 * d, 3 * d))
    yield from _linear(variables, f"{block}.attn.out", f"{source}/linear_1")
    yield from _layer_norm(variables, f"{block}.attn_ln", f"{source}/layer_norm")


def _cross_attention(variables: dict[str, np.ndarray], block: str, layer: str) -> Iterator[tuple[str, np.ndarray]]:
    source = f"{layer}/attention"
    d = variables[f"{source}/linear_0/weight"].shape[0]
    yield from _linear(variables, f"{block}.cross_attn.query", f"{source}/linear_0")
    yield from _linear(variables, f"{block}.cross_attn.key", f"{source}/linear_1", slice(0, d), bias=False)
    yield from _linear(variables, f"{block}.cross_attn.value", f"{source}/linear_1", slice(d, 2 * d))
    yield from _linear(variables, f"{block}.cross_attn.out", f"{source}/linear_2")
    yield from _layer_norm(variables, f"{block}.cross_attn_ln", f"{source}/layer_norm")


def _mlp(variables: dict[str, np.ndarray], block: str, layer: str) -> Iterator[tuple[str, np.ndarray]]:
    yield from _linear(variables, f"{block}.mlp.0", f"{layer}/ffn/linear_0")
    yield from _linear(variables, f"{block}.mlp.2", f"{layer}/ffn/linear_1")
    yield from _layer_norm(variables, f"{block}.mlp_ln", f"{layer}/ffn/layer_norm")


def _write_header(out: BinaryIO, hparams: dict[str, int]) -> None:
    order = ("n_vocab", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer", "n_text_ctx",
             "n_text_state", "n_text_head", "n_text_layer", "n_mels")
    out.write(struct.pack("<12i", GGML_MAGIC, *(hparams[key] for key in order), 1))


def _write_mel_filters(out: BinaryIO, filters: np.ndarray) -> None:
    out.write(struct.pack("<2i", *filters.shape))
    out.write(filters.astype("<f4").tobytes())


def _write_vocabulary(out: BinaryIO, tokens: list[bytes]) -> None:
    out.write(struct.pack("<i", len(tokens)))
    for token in tokens:
        out.write(struct.pack("<i", len(token)))
        out.write(token)


def _write_tensor(out: BinaryIO, name: str, tensor: np.ndarray) -> None:
    as_f32 = tensor.ndim < 2 or name in _F32_MATRICES
    data = np.ascontiguousarray(tensor, dtype="<f4" if as_f32 else "<f2")
    encoded = name.encode("utf-8")
    out.write(struct.pack("<3i", data.ndim, len(encoded), 0 if as_f32 else 1))
    out.write(struct.pack(f"<{data.ndim}i", *reversed(data.shape)))
    out.write(encoded)
    out.write(data.tobytes())
