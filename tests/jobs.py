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
