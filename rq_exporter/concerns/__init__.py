"""Every concern the exporter reads (rq_exporter/concern.py), in order: a concern comes after those it
needs, and its families come out in this order, after the core ones."""

from __future__ import annotations

from rq_exporter.concern import AnyConcern
from rq_exporter.ratelimit import RateLimits

CONCERNS: tuple[type[AnyConcern], ...] = (
    RateLimits,
)
