"""Job functions the real RQ workers of the tests run (importable from tests/)."""

import os
import time


def sleep_for(seconds: float = 0.0) -> float:
    time.sleep(seconds)
    return seconds


def fail(message: str = "failure on purpose") -> None:
    raise RuntimeError(message)


def hang(seconds: float = 3600) -> None:
    time.sleep(seconds)


def pid_then_sleep(path: str, seconds: float = 3600) -> None:
    with open(path, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(seconds)


def _attempt(path: str) -> int:
    """This call's attempt number at the job whose attempts ``path`` counts (one line each)."""
    with open(path, "a") as f:
        f.write("x\n")
    with open(path) as f:
        return len(f.readlines())


def fail_then_succeed(path: str, failures: int) -> int:
    """Raises on its first ``failures`` attempts, then succeeds (a job enqueued with Retry)."""
    attempt = _attempt(path)
    if attempt <= failures:
        raise RuntimeError(f"attempt {attempt} fails on purpose")
    return attempt


def return_retry(path: str, retries: int, max_retries: int):
    """Returns rq.Retry (RQ >= 2.x: the worker retries the job) on its first ``retries`` attempts."""
    from rq import Retry

    attempt = _attempt(path)
    if attempt <= retries:
        return Retry(max=max_retries)
    return attempt
