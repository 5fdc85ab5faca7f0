"""A loopback TCP proxy that delays every chunk by a fixed time per direction, and counts round trips.

It stands in for a network between an exporter and Redis: with ``delay`` seconds each way a
request/reply turn costs ``2 * delay`` more. Data keeps its order; each direction is one
FIFO whose chunks leave ``delay`` after they arrived.

Round trips are counted from the RESP traffic itself (parsed with hiredis): a client that
sends a command while every command it sent before has been answered, and the answers
passed back to it, starts a round trip. A pipeline, however many pieces it is written in,
is one; a client that waits for each reply before its next command makes one per command.
The proxy's connections count as one client's: the exporter reads some groups of a round on a
second connection, pipelined alongside the first (batch.py). So an exchange on one connection
while another has commands outstanding is not counted: the second connection's handshake, on the
scrape that opens it, shows in that scrape's time, not in its round trips.

It serves only on 127.0.0.1 and only for as long as its ``with`` block runs.
"""

from __future__ import annotations

import asyncio
import selectors
import threading
import time
from collections import deque

import hiredis


class DelayProxy:
    def __init__(self, target_port: int, delay: float, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        self.port = 0
        self.bursts = 0
        self._state = {"sent": 0, "answered": 0}  # commands, over all the connections
        # select() takes a float timeout; epoll and poll round it up to whole milliseconds,
        # which would turn a 0.5 ms delay into 1 ms or more.
        self._loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
        self._thread = threading.Thread(target=self._loop.run_forever, name="delay-proxy", daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def __enter__(self) -> DelayProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _client(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        state = {"sent": 0, "answered": 0}  # this connection's; self._state has every connection's
        try:
            await asyncio.gather(
                self._pipe(client_reader, server_writer, state, request=True),
                self._pipe(server_reader, client_writer, state, request=False),
            )
        except (OSError, asyncio.CancelledError):
            pass  # one side went away, or the proxy is stopping
        finally:
            for writer in (client_writer, server_writer):
                writer.close()
            # What a closed connection left unanswered never will be: not outstanding any more.
            self._state["answered"] += state["sent"] - state["answered"]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: dict,
                    request: bool) -> None:
        queue: deque[tuple[float, bytes, int]] = deque()
        ready = asyncio.Event()
        done = False
        resp = hiredis.Reader()  # counts whole commands (client side) or replies (server side)

        def complete(data: bytes) -> int:
            resp.feed(data)
            count = 0
            while resp.gets() is not False:
                count += 1
            return count

        async def send() -> None:
            while not (done and not queue):
                if not queue:
                    ready.clear()
                    await ready.wait()
                    continue
                due, data, replies = queue.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                state["answered"] += replies
                self._state["answered"] += replies
                await writer.drain()

        sender = asyncio.create_task(send())
        try:
            while data := await reader.read(1 << 16):
                now = time.monotonic()
                replies = 0
                if request:
                    if self._state["sent"] == self._state["answered"]:
                        self.bursts += 1  # nothing outstanding: the client waited for all its answers
                    sent = complete(data)
                    state["sent"] += sent
                    self._state["sent"] += sent
                else:
                    replies = complete(data)
                queue.append((now + self.delay, data, replies))
                ready.set()
        finally:
            done = True
            ready.set()
            await sender
            writer.close()


def measured_round_trip(port: int, count: int = 200) -> float:
    """Median seconds of a PING round trip to a Redis on ``port`` (through a proxy or not)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        times = []
        for _ in range(count):
            start = time.perf_counter()
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                reply += sock.recv(64)
            times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]
