"""The demo's job functions (imported by the RQ workers as ``demo.jobs``)."""

from __future__ import annotations

import random
import time


def process(seconds: float = 0.1) -> float:
    """A job that succeeds after some work."""
    time.sleep(seconds)
    return seconds


def fail(message: str = "the demo failed this job on purpose") -> None:
    raise RuntimeError(message)


def flaky(failure_probability: float = 0.5, seconds: float = 0.05) -> float:
    """Fails at random, so retries sometimes rescue it and sometimes do not."""
    time.sleep(seconds)
    if random.random() < failure_probability:
        raise RuntimeError("flaky job failed")
    return seconds
