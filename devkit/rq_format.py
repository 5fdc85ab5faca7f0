"""RQ's data as RQ writes it, for fixtures and datasets written without RQ."""

from __future__ import annotations

import time
from datetime import datetime, timezone

# rq.utils.utcformat: UTC, microseconds, a literal Z.
RQ_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def rq_time(epoch: float | None = None) -> str:
    """``epoch`` (now unless given) as RQ writes a timestamp into a job or worker hash."""
    return datetime.fromtimestamp(time.time() if epoch is None else epoch, timezone.utc).strftime(RQ_TIME_FORMAT)
