"""``rq-exporter --healthcheck``: does this container's exporter answer /healthz?

For the Dockerfile's HEALTHCHECK and the Kubernetes probes, which cannot know the port, the
address or whether the exporter serves HTTPS. It reads the settings the exporter reads: the flags
given after ``--healthcheck``, or else those of the exporter running as the container's main
process (PID 1, as the image starts it), and the environment. Then it GETs /healthz over HTTP, or
HTTPS when ``--web-config-file`` has a certificate. Exit 0 on a 200, 1 otherwise (one line
saying why), 2 when the settings are wrong.
"""

from __future__ import annotations

import http.client
import ipaddress
import ssl
import sys
from pathlib import Path

from rq_exporter_ng import loading
from rq_exporter_ng import settings as settings_module
from rq_exporter_ng.web import webconfig

MAIN_PROCESS = Path("/proc/1/cmdline")
COMMANDS = ("rq-exporter", "rq-exporter-ng")  # pyproject.toml's [project.scripts]
# Well under the HEALTHCHECK's and the probes' own timeouts (3 s), so this says why it failed.
TIMEOUT = 2.0
# Where a wildcard listening address is reached from inside the container.
LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def main(args: list[str], main_process: Path = MAIN_PROCESS) -> int:
    if not args:
        args = exporter_args(main_process) or []
    try:
        settings = loading.load(args)
        web = webconfig.load(settings.web_config_file) if settings.web_config_file else webconfig.WebConfig()
    except settings_module.InvalidSettings as error:
        return _say(str(error), 2)
    except webconfig.WebConfigError as error:
        return _say(str(settings_module.InvalidSettings("web_config_file", str(error))), 2)
    host = LOOPBACK.get(settings.host, settings.host)
    shown = f"[{host}]" if _is_ipv6(host) else host
    url = f"{'https' if web.tls else 'http'}://{shown}:{settings.port}/healthz"
    try:
        status = _get(host, settings.port, web)
    except OSError as error:
        return _say(f"{url}: {error}", 1)
    return 0 if status == 200 else _say(f"{url}: HTTP {status}", 1)


def exporter_args(cmdline: Path) -> list[str] | None:
    """The flags of the process whose command line this is, if it runs the exporter."""
    try:
        words = [w.decode(errors="surrogateescape") for w in cmdline.read_bytes().split(b"\0")]
    except OSError:
        return None
    words = words[:-1] if words and not words[-1] else words  # the trailing NUL
    for i, word in enumerate(words):
        if Path(word).name in COMMANDS:
            return words[i + 1:]
        if word == "-m" and words[i + 1:i + 2] == ["rq_exporter_ng"]:
            return words[i + 2:]
    return None


def _get(host: str, port: int, web: webconfig.WebConfig) -> int:
    connection: http.client.HTTPConnection
    if web.tls:
        # This checks that the exporter serves, on this machine: not who it is, so the certificate
        # (issued for the name Prometheus uses) is not verified.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(host, port, timeout=TIMEOUT, context=context)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        connection.connect()
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status
        except OSError:
            if web.client_auth_type != "RequireAndVerifyClientCert":
                raise
            # TLS 1.3 finishes the handshake before the server checks the client certificate we
            # cannot show, then it hangs up: its TLS server answered, so the process serves.
            return 200
    finally:
        connection.close()


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def _say(message: str, code: int) -> int:
    print(f"rq-exporter --healthcheck: {message}", file=sys.stderr)
    return code
