"""A TCP proxy on loopback between the exporter and a real redis-server that injects faults:
replies delayed by seconds, connections closed on accept, replies cut in the middle.

Only ever listens on and connects to 127.0.0.1. Every socket and thread it opens is closed
by stop().
"""

from __future__ import annotations

import socket
import threading
import time


class FaultProxy:
    MODES = ("pass", "delay", "close", "truncate")

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.mode = "pass"
        self.delay = 0.0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.accepted = 0
        self._spawn(self._accept_loop)

    def set(self, mode: str, delay: float = 0.0) -> None:
        assert mode in self.MODES
        self.mode, self.delay = mode, delay
        if mode == "close":  # drops the open connections too, not only the next ones
            with self._lock:
                sockets = list(self._sockets)
            self._close(*sockets)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _close(self, *socks: socket.socket) -> None:
        for sock in socks:
            with self._lock:
                self._sockets.discard(sock)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._track(client)
            if self.mode == "close":
                self._close(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
            except OSError:
                self._close(client)
                continue
            self._track(upstream)
            self._spawn(self._pump, client, upstream, False)
            self._spawn(self._pump, upstream, client, True)

    def _pump(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        source.settimeout(0.2)
        try:
            while not self._stopped.is_set():
                try:
                    data = source.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                if replies and self.mode == "delay":
                    # Sleep in small steps so stop() is never held up by a long delay.
                    until = time.monotonic() + self.delay
                    while time.monotonic() < until and not self._stopped.is_set():
                        time.sleep(0.05)
                if replies and self.mode == "truncate":
                    sink.sendall(data[: max(1, len(data) // 2)])
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._close(source, sink)

    def open_connections(self) -> int:
        with self._lock:
            return len(self._sockets)

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            self._close(sock)
        for thread in threads:
            thread.join(timeout=2)
