"""HTTP: /metrics (text or OpenMetrics, gzip when asked), /probe, a landing page at /, and /healthz."""

from __future__ import annotations

import html
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, exposition

from rq_exporter_ng import __version__
from rq_exporter_ng.collector import gc_paused
from rq_exporter_ng.web.exposition import iter_render_parts
from rq_exporter_ng.web.gzipped import gzipped

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]


def make_metrics_app(registry: CollectorRegistry, disable_compression: bool = False) -> WsgiApp:
    """prometheus_client's make_wsgi_app (same methods, negotiation, name[] filter and gzip),
    rendering with exposition.py."""

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if method == "OPTIONS":
            start_response("200 OK", [("Allow", "OPTIONS,GET")])
            return [b""]
        if method != "GET":
            status = "405 Method Not Allowed"
            start_response(status, [("Allow", "OPTIONS,GET")])
            return [f"# HTTP {status}: {method}; use OPTIONS or GET\n".encode()]
        params = parse_qs(environ.get("QUERY_STRING", ""))
        target = registry.restricted_registry(params["name[]"]) if "name[]" in params else registry
        # The body in parts, never joined: at 10,000 queues a joined copy is 11 MB more at the peak.
        # Gzipped, each part is compressed as soon as it is made, so only one family's rows and one
        # piece of its text are alive at a time next to the compressed body (~1/10 of it). Either
        # way every part is made before start_response: a failure still answers as it did, never
        # with half a body.
        # The families are built as they are written, here: the garbage collector stays paused for
        # them as for the read (~120 ms of CPU a scrape at 10,000 queues otherwise: their rows are
        # ~450,000 tuples, and a full collection runs over the whole heap).
        with gc_paused:
            parts, content_type = iter_render_parts(target, environ.get("HTTP_ACCEPT"))
            headers = [("Content-Type", content_type)]
            if not disable_compression and exposition.gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING") or ""):
                output = _gzipped(parts)
                headers.append(("Content-Encoding", "gzip"))
            else:
                output = list(parts)
        headers.append(("Content-Length", str(sum(map(len, output)))))
        start_response("200 OK", headers)
        return output

    return app


# Not prometheus_client's 9 (gzip.compress's), nor zlib's default 6: on /metrics text level 9 costs
# ~8x the CPU of 6 for a body ~1 % smaller, and 6 ~2.8x the CPU of 3 for a body 4 % smaller (the
# 11.8 MB body of 10,000 queues: 86 ms at 6, 31 ms at 3, 790 against 823 kB; levels 4-5 already
# take zlib's slow path, 66-71 ms; docs/benchmarks.md). Prometheus always asks for gzip.
GZIP_LEVEL = 3


def _gzipped(parts: Iterable[bytes]) -> list[bytes]:
    """The joined parts gzipped; the stream decompresses to prometheus_client's body (its bytes
    differ: level GZIP_LEVEL, and no mtime in the header). Compressed on another core while the
    later parts are written (gzipped.py)."""
    return gzipped(parts, GZIP_LEVEL)


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


def make_app(registry: CollectorRegistry, target: str,
             probes: Mapping[str, CollectorRegistry] | None = None) -> WsgiApp:
    metrics = make_metrics_app(registry)
    page = landing_page(target)
    probe_apps = {name: make_metrics_app(r) for name, r in (probes or {}).items()}

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/probe":
            return _probe(probe_apps, environ, start_response)
        if path in ("/healthz", "/-/healthy"):
            return _plain(start_response, "200 OK", "ok\n")
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [page]
        return _plain(start_response, "404 Not Found", "not found: try /metrics\n")

    return app


def _probe(apps: Mapping[str, WsgiApp], environ: dict, start_response: Callable) -> Iterable[bytes]:
    """/probe?target=NAME: the metrics of one target of the allow-list (--targets-file).

    Only names from the file are served; anything else is refused before any connection,
    so the exporter cannot be made to connect where a request says."""
    targets = parse_qs(environ.get("QUERY_STRING", "")).get("target", [])
    if len(targets) != 1 or not targets[0]:
        return _plain(start_response, "400 Bad Request", "give exactly one ?target=NAME\n")
    app = apps.get(targets[0])
    if app is None:
        return _plain(start_response, "404 Not Found", "unknown target: only the names of --targets-file\n")
    return app(environ, start_response)


def _plain(start_response: Callable, status: str, text: str) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
    return [text.encode()]


class _QuietHandler(WSGIRequestHandler):
    # A client that connects and then says nothing must not hold its thread forever.
    timeout = 60

    def log_message(self, format: str, *args: object) -> None:
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops the SYNs of a burst of scrapes (several
    # Prometheus replicas at once), which then retry a second later.
    request_queue_size = 128


def _family(host: str, port: int) -> socket.AddressFamily:
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return infos[0][0]


def serve(app: WsgiApp, host: str, port: int,
          tls: Callable[[], ssl.SSLContext] | None = None) -> WSGIServer:
    """A threaded server bound to host:port, not yet serving (call serve_forever).

    HTTPS when ``tls`` is given: it returns the context for each new connection, so that
    renewed certificates are served without a restart."""

    class Server(_ThreadingServer):
        address_family = _family(host, port)

        def finish_request(self, request, client_address) -> None:
            if tls is None:
                super().finish_request(request, client_address)
                return
            # The handshake runs here, in the request's thread: done in accept() it would
            # let one slow or silent client stall every other connection.
            request.settimeout(_QuietHandler.timeout)
            secure = tls().wrap_socket(request, server_side=True, do_handshake_on_connect=False)
            try:
                try:
                    secure.do_handshake()
                except (ssl.SSLError, OSError):
                    return
                super().finish_request(secure, client_address)
            finally:
                self.shutdown_request(secure)

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
