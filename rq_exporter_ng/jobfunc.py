"""A job's function name from its ``data`` field, without unpickling anything.

RQ stores ``zlib.compress(serializer.dumps((func_name, instance, args, kwargs)))``.
Unpickling would run code chosen by whoever can write to Redis, so the pickle is only
walked as opcodes (``pickletools.genops`` parses, it never builds objects): the first
string pushed is the function name. RQ's JSON serializer writes a list whose first
element is the name. Only the first few KB are decompressed: the name comes first, and
a huge (or hostile) payload must not cost the scrape.
"""

from __future__ import annotations

import io
import json
import pickletools
import zlib

# Enough for any import path; the rest of the payload (args) is never looked at.
_HEAD_BYTES = 4096
_MAX_NAME = 200

_STRING_OPCODES = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
)


def function_name(data: bytes | None) -> str | None:
    """The job's function name, or None when ``data`` is missing or not an RQ payload."""
    if not data:
        return None
    try:
        head = zlib.decompressobj().decompress(data, _HEAD_BYTES)
    except zlib.error:
        return None
    name = _from_json(head) if head.lstrip()[:1] == b"[" else _from_pickle(head)
    if not name or len(name) > _MAX_NAME or not name.isprintable():
        return None
    return name


def _from_pickle(head: bytes) -> str | None:
    try:
        for opcode, arg, _ in pickletools.genops(io.BytesIO(head)):
            if opcode.name in _STRING_OPCODES:
                return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
    except Exception:  # truncated or garbage pickle: genops raises ValueError and friends
        return None
    return None


def _from_json(head: bytes) -> str | None:
    try:
        text = head.decode("utf-8", "replace").lstrip()
        if not text.startswith("["):
            return None
        # raw_decode reads only the first element, so a payload cut at _HEAD_BYTES still works.
        value, _ = json.JSONDecoder().raw_decode(text, 1 + (len(text[1:]) - len(text[1:].lstrip())))
    except ValueError:
        return None
    return value if isinstance(value, str) else None
