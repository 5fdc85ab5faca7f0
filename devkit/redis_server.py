"""A throwaway redis-server: loopback only, a temporary directory of its own, nothing persisted."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import redis

from devkit.processes import free_port, stop_process, wait_for


class RedisServer:
    """A real redis-server on 127.0.0.1 (a free port unless given) in its own temporary directory.

    ``extra`` are more redis-server arguments; ``log`` takes its output (thrown away unless
    given); ``new_session`` starts it in a session of its own, out of reach of the terminal's
    Ctrl-C (the demo stops it itself, after the workers using it). Usable as a context manager:
    started on entry, stopped and its directory removed on exit.
    """

    def __init__(self, *extra: str, port: int | None = None, binary: str | None = None,
                 log: Path | None = None, new_session: bool = False) -> None:
        found = binary or shutil.which("redis-server")
        if not found:
            raise RuntimeError("redis-server is not on PATH (scripts/system-deps.sh installs it)")
        self.binary = found
        self.port = port or free_port()
        self.extra = list(extra)
        self.dir = tempfile.mkdtemp(prefix="rq-exporter-redis-")
        self.log = log
        self.new_session = new_session
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> RedisServer:
        """Starts it and waits until it answers PING (again after stop(): same port, empty)."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.dir, *self.extra]
        if self.log is None:
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            start_new_session=self.new_session)
        else:
            with open(self.log, "ab") as out:  # the child keeps its own descriptor
                self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                                start_new_session=self.new_session)
        wait_for(self._answers, timeout, what=f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log else ""
            raise RuntimeError(f"redis-server on port {self.port} exited with {self.process.returncode}\n{tail}")
        return self._pings()

    def _pings(self) -> bool:
        try:
            with self.client(socket_timeout=0.5) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def client(self, **options) -> redis.Redis:
        """A client of this server (a subclass serving TLS, say, adds what its clients need)."""
        return redis.Redis(port=self.port, **options)

    def stop(self) -> None:
        if self.process:
            stop_process(self.process, 10)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
