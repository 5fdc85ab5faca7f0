"""The rq-exporter command: settings -> Redis client -> collector -> HTTP server."""

from __future__ import annotations

import errno
import logging
import signal
import socket
import sys
import threading

from prometheus_client import CollectorRegistry

from rq_exporter_ng import __version__, healthcheck, loading, logs, targets, usage
from rq_exporter_ng import settings as settings_module
from rq_exporter_ng.web import guard, webconfig
from rq_exporter_ng.web.server import make_app, run_until, serve

log = logging.getLogger("rq_exporter")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--healthcheck"]:
        return healthcheck.main(args[1:])
    # Imported here, not above: the health check, run every few seconds, needs none of it.
    from rq_exporter_ng.collector import RQCollector
    from rq_exporter_ng.connection import connect, redacted_target

    if "-v" in args or "--version" in args:  # rq-exporter 3.x's version flag; anywhere, as --help
        print(f"rq-exporter v{__version__}")
        return 0
    if "-h" in args or "--help" in args:
        print(usage.help_text(), end="")
        return 0
    try:
        settings = loading.load(args)
    except settings_module.InvalidSettings as error:
        print(f"rq-exporter: {error}", file=sys.stderr)
        return 2
    logs.setup(settings.log_level, settings.log_format, settings.log_datefmt)
    for legacy in ("worker_class", "queue_class"):
        if getattr(settings, legacy):
            log.warning("--%s is ignored: this exporter reads keys directly; set --key-prefix if "
                        "your classes change RQ's key prefix", legacy.replace("_", "-"))
    for name in settings.unused:
        log.warning("%s is not used: --redis-url (%s) wins over every other Redis setting, as in rq-exporter 3.x",
                    "/".join([settings_module.flag_names(name)[0], *settings_module.env_names(name)]),
                    "/".join(settings_module.env_names("redis_url")))

    try:
        web, tls, probes = _production(settings)
    except settings_module.InvalidSettings as error:
        print(f"rq-exporter: {error}", file=sys.stderr)
        return 2

    registry = CollectorRegistry(auto_describe=False)
    collector = RQCollector(connect(settings), settings)
    registry.register(collector)
    app = guard.protect(make_app(registry, redacted_target(settings), probes), web)
    try:
        server = serve(app, settings.host, settings.port, tls)
    except OSError as error:
        if isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:
            # No such name, or an address of another machine: the setting is wrong, not the moment.
            print(f"rq-exporter: {settings_module.InvalidSettings('host', f'cannot listen there: {error}')}",
                  file=sys.stderr)
            return 2
        print(f"rq-exporter: cannot listen on --host {settings.host} --port {settings.port}: {error}",
              file=sys.stderr)
        return 1

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    host, port = server.server_address[:2]
    log.info("rq-exporter %s serving %s://%s:%s/metrics, reading %s%s",
             __version__, "https" if tls else "http", host, port, redacted_target(settings),
             f"; /probe targets: {', '.join(probes)}" if probes else "")
    # In the background: a Redis that hangs must not delay serving (rq_up 0 is an answer).
    threading.Thread(target=collector.check, name="startup-check", daemon=True).start()
    run_until(server, stop)
    log.info("stopped")
    return 0


def _production(settings: settings_module.Settings):
    """The web config (TLS, basic auth) and the /probe targets' registries; InvalidSettings if wrong."""
    from rq_exporter_ng.collector import RQCollector
    from rq_exporter_ng.connection import connect

    web = webconfig.WebConfig()
    tls = None
    probes: dict[str, CollectorRegistry] = {}
    try:
        if settings.web_config_file:
            web = webconfig.load(settings.web_config_file)
            tls = webconfig.TlsContexts(web) if web.tls else None
    except webconfig.WebConfigError as error:
        raise settings_module.InvalidSettings("web_config_file", str(error)) from None
    try:
        found = targets.load(settings.targets_file, settings) if settings.targets_file else {}
    except targets.TargetsError as error:
        raise settings_module.InvalidSettings("targets_file", str(error)) from None
    for name, target in found.items():
        probes[name] = CollectorRegistry(auto_describe=False)
        probes[name].register(RQCollector(connect(target), target))
    return web, tls, probes
