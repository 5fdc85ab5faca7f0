"""HTTP: /metrics (text or OpenMetrics, gzip when asked), a landing page at /, and /healthz."""

from __future__ import annotations

import html
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from rq_exporter import __version__

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]


def landing_page(target: str) -> bytes:
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>RQ exporter</title></head>
<body>
<h1>RQ exporter</h1>
<p>Version {html.escape(__version__)}, reading RQ from <code>{html.escape(target)}</code>.</p>
<ul>
<li><a href="metrics">/metrics</a>: the metrics</li>
<li><a href="healthz">/healthz</a>: 200 while the process serves (it does not depend on Redis: see rq_up)</li>
</ul>
</body></html>
""".encode()


def make_app(registry: CollectorRegistry, target: str) -> WsgiApp:
    metrics = make_wsgi_app(registry)
    page = landing_page(target)

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path in ("/healthz", "/-/healthy"):
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [page]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics\n"]

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


def _family(host: str, port: int) -> socket.AddressFamily:
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return infos[0][0]


def serve(app: WsgiApp, host: str, port: int) -> WSGIServer:
    """A threaded server bound to host:port, not yet serving (call serve_forever)."""

    class Server(_ThreadingServer):
        address_family = _family(host, port)

    return make_server(host, port, app, server_class=Server, handler_class=_QuietHandler)


def run_until(server: WSGIServer, stop: threading.Event) -> None:
    """Serve in a thread until ``stop`` is set, then shut down cleanly."""
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
