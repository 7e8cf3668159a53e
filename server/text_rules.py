"""The one rule for text a client sends, applied at the edge.

**Control characters.** No client text field may hold a C0 control character other than tab, newline and carriage
return, nor DEL (U+007F). PostgreSQL refuses NUL in ``text`` and ``jsonb`` (a 500 before this rule); the others
have no business in names, ids or metadata either. A violation is a 422 ``validation_failed`` that names the field:
``metadata.k: control characters are not allowed``.

Where it runs:
- JSON bodies: request payloads subclass :class:`CheckedText`, whose ``__post_init__`` (run by msgspec right after
  decoding) walks every field, nested Structs, lists and dict keys and values at any depth;
- multipart text fields: the chunk fields decode into a ``CheckedText`` Struct the same way;
- tus ``Upload-Metadata`` keys and values, query parameters used in queries, file names: :func:`check_text`.

**Names.** File names (``original_name``, ``file_name``, tus ``filename``) are also cleaned of bidi controls
(U+202A–U+202E, U+2066–U+2069) and every other invisible format character (Unicode category Cf: zero-width
spaces and joiners, LRM/RLM, the BOM, soft hyphens...), so U+202E + ``gpj.mp4`` cannot show as ``4pm.jpg``:
:func:`clean_name`, used when a name is stored and again when it is served (``Content-Disposition``).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import msgspec

from mediasvc.errors import ValidationFailed

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MESSAGE = "control characters are not allowed"


def has_control(value: str) -> bool:
    return CONTROL.search(value) is not None


def _violation(field: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {MESSAGE}", details={"field": field})


def check_query(**values: str | None) -> None:
    """A 422 naming the first query parameter that holds a control character (PostgreSQL refuses NUL in text)."""
    for field, value in values.items():
        check_text(value, field)


def check_text(value: str | None, field: str) -> str | None:
    """``value`` unchanged, or a 422 naming ``field`` when it holds a control character."""
    if value is not None and has_control(value):
        raise _violation(field)
    return value


def _label(key: str) -> str:
    """A dict key as it appears in a field path, its control characters escaped so the message stays readable."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", key)[:100]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def check_tree(value: Any, field: str = "") -> None:
    """Check every string in ``value`` (a Struct, dict, list, tuple or str) at any depth, dict keys included.
    Iterative, so a deeply nested JSON document cannot exhaust the stack."""
    stack: list[tuple[Any, str]] = [(value, field)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if has_control(item):
                raise _violation(path or "body")
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and has_control(key):
                    raise _violation(_join(path, _label(key)))
                stack.append((child, _join(path, str(key))))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
        elif isinstance(item, msgspec.Struct):
            stack.extend((getattr(item, name), _join(path, name)) for name in item.__struct_fields__)


class CheckedText(msgspec.Struct):
    """Base of every request payload: decoding it checks all its text (see the module docstring). A subclass
    that needs its own ``__post_init__`` calls ``super().__post_init__()`` first."""

    def __post_init__(self) -> None:
        check_tree(self)


def _invisible(char: str) -> bool:
    return unicodedata.category(char) == "Cf"  # bidi embeddings, overrides and isolates are all Cf


def clean_name(name: str) -> str:
    """``name`` without bidi controls and other invisible format characters."""
    if name.isascii():
        return name
    return "".join(char for char in name if not _invisible(char))
