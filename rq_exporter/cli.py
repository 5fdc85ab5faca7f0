"""The rq-exporter command: settings -> Redis client -> collector -> HTTP server."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from prometheus_client import CollectorRegistry

from rq_exporter import __version__, logs, settings as settings_module
from rq_exporter.collector import RQCollector
from rq_exporter.connection import connect
from rq_exporter.server import make_app, run_until, serve

log = logging.getLogger("rq_exporter")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        settings = settings_module.load(args)
    except settings_module.InvalidSettings as error:
        print(f"rq-exporter: {error}", file=sys.stderr)
        return 2
    logs.setup(settings.log_level, settings.log_format)
    for legacy in ("worker_class", "queue_class"):
        if getattr(settings, legacy):
            log.warning("--%s is ignored: this exporter reads keys directly; set --key-prefix if "
                        "your classes change RQ's key prefix", legacy.replace("_", "-"))

    registry = CollectorRegistry(auto_describe=False)
    registry.register(RQCollector(connect(settings), settings))
    try:
        server = serve(make_app(registry, settings.redacted_target()), settings.host, settings.port)
    except OSError as error:
        print(f"rq-exporter: cannot listen on --host {settings.host} --port {settings.port}: {error}",
              file=sys.stderr)
        return 1

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    host, port = server.server_address[:2]
    log.info("rq-exporter %s serving http://%s:%s/metrics, reading %s",
             __version__, host, port, settings.redacted_target())
    run_until(server, stop)
    log.info("stopped")
    return 0
