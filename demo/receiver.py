"""The bundle's notification receiver: an Alertmanager webhook that shows every notification.

Alertmanager POSTs its webhook payload (version 4) here; each alert of it, firing or resolved, is
printed as one line (state, alert name, queue, summary, description, runbook and dashboard links)
and kept for the page at GET / (newest first) and GET /api/notifications (JSON). Standard library
only, so the demo image (demo/ alone) runs it as a compose service.

    python -m demo.receiver --host 0.0.0.0 --port 9095
"""

from __future__ import annotations

import argparse
import html
import json
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TextIO

KEPT = 500  # notifications the page lists; older ones drop off (it is a console, not an archive)


@dataclass(frozen=True)
class Notification:
    """One alert of one webhook delivery."""

    received: str  # when it arrived here (UTC, ISO 8601)
    receiver: str  # the Alertmanager receiver that sent it
    status: str  # firing | resolved
    alertname: str
    severity: str
    queue: str
    instance: str
    summary: str
    description: str
    runbook_url: str
    dashboard_url: str
    starts_at: str
    ends_at: str


def parse(payload: dict, received: str) -> list[Notification]:
    """Alertmanager's webhook payload -> one Notification per alert; missing fields become ''."""
    out = []
    for alert in payload.get("alerts") or []:
        labels = alert.get("labels") or {}
        notes = alert.get("annotations") or {}
        out.append(Notification(
            received=received,
            receiver=str(payload.get("receiver", "")),
            status=str(alert.get("status") or payload.get("status") or ""),
            alertname=str(labels.get("alertname", "")),
            severity=str(labels.get("severity", "")),
            queue=str(labels.get("queue", "")),
            instance=str(labels.get("instance", "")),
            summary=str(notes.get("summary", "")),
            description=str(notes.get("description", "")),
            runbook_url=str(notes.get("runbook_url", "")),
            dashboard_url=str(notes.get("dashboard_url", "")),
            starts_at=str(alert.get("startsAt", "")),
            ends_at=str(alert.get("endsAt", "")),
        ))
    return out


def line(n: Notification) -> str:
    """The console line of a notification."""
    where = " ".join(f"{k}={v}" for k, v in (("queue", n.queue), ("instance", n.instance)) if v)
    text = f"[{n.status.upper()}] {n.alertname} ({n.severity or 'no severity'}) {where}: {n.summary}"
    if n.description:
        text += f" {n.description}"
    if n.runbook_url:
        text += f" runbook: {n.runbook_url}"
    if n.dashboard_url:
        text += f" dashboard: {n.dashboard_url}"
    return text


def page(notifications: list[Notification]) -> str:
    def link(url: str, label: str) -> str:
        return f'<a href="{html.escape(url)}">{label}</a>' if url else ""

    rows = "".join(
        f"<tr class={n.status}><td>{html.escape(n.received)}</td><td>{html.escape(n.status)}</td>"
        f"<td>{html.escape(n.alertname)}</td><td>{html.escape(n.severity)}</td><td>{html.escape(n.queue)}</td>"
        f"<td><b>{html.escape(n.summary)}</b><br>{html.escape(n.description)}</td>"
        f"<td>{link(n.runbook_url, 'runbook')} {link(n.dashboard_url, 'dashboard')}</td></tr>"
        for n in notifications)
    return (
        "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=5>"
        "<title>RQ notifications</title><style>body{font-family:sans-serif}td{padding:4px 8px;"
        "vertical-align:top}tr.firing{background:#fde2e2}tr.resolved{background:#e2f5e2}</style>"
        f"<h1>RQ notifications</h1><p>{len(notifications)} received (newest first; the page reloads every 5 s)."
        "<table><tr><th>received<th>status<th>alert<th>severity<th>queue<th>summary / description<th>links"
        f"{rows}</table>")


class Inbox:
    """The notifications received so far (thread-safe: the server handles requests in threads)."""

    def __init__(self, out: TextIO | None = None, on_line: Callable[[str], None] | None = None) -> None:
        self._kept: deque[Notification] = deque(maxlen=KEPT)
        self._lock = threading.Lock()
        self._out = out
        self._on_line = on_line

    def add(self, payload: dict) -> list[Notification]:
        received = datetime.now(timezone.utc).isoformat(timespec="seconds")
        new = parse(payload, received)
        with self._lock:
            self._kept.extend(new)
            for n in new:
                if self._on_line:
                    self._on_line(line(n))
                if self._out:
                    print(line(n), file=self._out, flush=True)
        return new

    def newest_first(self) -> list[Notification]:
        with self._lock:
            return list(reversed(self._kept))


def handler(inbox: Inbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(payload, dict):
                    raise ValueError("not a JSON object")
            except ValueError as error:
                self._send(400, "text/plain", f"not an Alertmanager webhook payload: {error}\n")
                return
            inbox.add(payload)
            self._send(200, "text/plain", "ok\n")

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/":
                self._send(200, "text/html; charset=utf-8", page(inbox.newest_first()))
            elif path == "/api/notifications":
                body = json.dumps([asdict(n) for n in inbox.newest_first()], indent=1)
                self._send(200, "application/json", body)
            elif path == "/healthz":
                self._send(200, "text/plain", "ok\n")
            else:
                self._send(404, "text/plain", "not found\n")

        def _send(self, status: int, content_type: str, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the notification lines are the log; request lines would drown them

    return Handler


def serve(host: str, port: int, inbox: Inbox,
          listening: Callable[[], None] = lambda: None) -> ThreadingHTTPServer:
    """A started server (in a daemon thread); shutdown() stops it.

    `listening` runs once the port is bound and before any request is answered, so what it prints
    comes before any notification (a webhook that arrives at once would otherwise print first)."""
    server = ThreadingHTTPServer((host, port), handler(inbox))
    server.daemon_threads = True
    listening()
    threading.Thread(target=server.serve_forever, name="receiver", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=9095)
    args = parser.parse_args(argv)
    # Before the server answers: a SIGTERM sent as soon as it does (a test, a quick compose stop)
    # would otherwise kill the process before these are in place.
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server = serve(args.host, args.port, Inbox(out=sys.stdout), listening=lambda: print(
        f"receiver: listening on http://{args.host}:{args.port}/ (Alertmanager webhook: POST here)",
        flush=True))
    stop.wait()
    server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
