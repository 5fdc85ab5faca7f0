"""Every use of prometheus_client beyond its documented API, in one place.

Each one is marked PRIVATE with what it relies on. They are checked against the library's own
output by tests/web/test_exposition.py, on the oldest (constraints/minimums.txt) and the newest
prometheus_client CI installs: a release that changes one of them fails those tests rather
than changing what /metrics says.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from prometheus_client import exposition
from prometheus_client.openmetrics import exposition as om_exposition

# PRIVATE: the escaping schemes a scraper asks for (Accept: ...;escaping=), module constants of
# the OpenMetrics encoder. "underscores" and "allow-utf-8" leave plain names as they are; "dots"
# and "values" rewrite even plain names, so those are left to the library.
UNDERSCORES: str = om_exposition.UNDERSCORES
FAST_ESCAPINGS = (om_exposition.UNDERSCORES, om_exposition.ALLOWUTF8)

_PLAIN_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def plain_name(name: str) -> bool:
    """A metric name every format and fast escaping writes unchanged (a ':' is escaped in OpenMetrics)."""
    return _PLAIN_NAME.fullmatch(name) is not None


def plain_label_names(names: Iterable[str]) -> bool:
    """Label names every format writes unchanged. PRIVATE: the library's own check."""
    return all(om_exposition._is_valid_legacy_labelname(n) for n in names)


def encoder_choice(encoder: Callable) -> tuple[bool, dict[str, Any]] | None:
    """What ``exposition.choose_encoder`` picked, as (OpenMetrics?, keyword arguments), when it is
    an encoder the fast renderers stand in for; None otherwise.

    PRIVATE: choose_encoder returns the bare text encoder for plain text 0.0.4, and otherwise a
    ``functools.partial`` of one of the two encoders with ``escaping`` (and ``version``) keywords.
    Anything else (a future encoder, an argument we do not know) goes to the library.
    """
    if encoder is exposition.generate_latest:
        return False, {}
    if not isinstance(encoder, partial) or encoder.args or not set(encoder.keywords) <= {"escaping", "version"}:
        return None
    if encoder.keywords.get("escaping", UNDERSCORES) not in FAST_ESCAPINGS:
        return None
    if encoder.func is exposition.generate_latest and "version" not in encoder.keywords:
        return False, dict(encoder.keywords)
    if encoder.func is om_exposition.generate_latest:
        return True, dict(encoder.keywords)
    return None
