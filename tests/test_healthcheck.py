"""`rq-exporter --healthcheck` (the Dockerfile's HEALTHCHECK and the k8s probes) against the real
exporter process: plain HTTP and TLS (--web-config-file), another port than 9726, settings from
flags, from the environment, or from the exporter's own command line (PID 1 in a container)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from certs import Certs, make_certs

from devkit import free_port
from rq_exporter_ng import healthcheck
from support import ROOT, Exporter, run_exporter

NO_REDIS = ("--redis-url", "redis://127.0.0.1:1/0")  # /healthz does not depend on Redis


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("healthcheck-certs"))


class TlsExporter(Exporter):
    """The exporter serving HTTPS: up once its port accepts connections."""

    def _serves(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
            return True
        except OSError:
            return False


def _web_config(tmp_path: Path, certs: Certs, client_certs: bool = False) -> Path:
    path = tmp_path / "web.yml"
    text = f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n"
    if client_certs:
        text += f"  client_ca_file: {certs.ca}\n  client_auth_type: RequireAndVerifyClientCert\n"
    path.write_text(text)
    return path


def _check(*args: str, env: dict | None = None):
    return run_exporter("--healthcheck", *args, env=env, timeout=20)


def test_plain_http_on_another_port():
    exporter = Exporter(*NO_REDIS)
    try:
        assert exporter.port != 9726
        result = _check("--host", "127.0.0.1", "--port", str(exporter.port))
        assert (result.returncode, result.stderr) == (0, "")
        # The exporter's own settings as variables, as a container's environment gives them.
        assert _check(env={"RQ_EXPORTER_PORT": str(exporter.port)}).returncode == 0
        assert _check(env={"RQ_EXPORTER_HOST": "127.0.0.1", "RQ_EXPORTER_PORT": str(exporter.port)}).returncode == 0
    finally:
        exporter.stop()


@pytest.mark.parametrize("client_certs", [False, True], ids=["tls", "tls with client certificates"])
def test_tls_from_the_web_config_file(certs, tmp_path, client_certs):
    config = _web_config(tmp_path, certs, client_certs)
    exporter = TlsExporter(*NO_REDIS, "--web-config-file", str(config))
    try:
        result = _check("--port", str(exporter.port), "--web-config-file", str(config))
        assert (result.returncode, result.stderr) == (0, "")
        result = _check(env={"RQ_EXPORTER_PORT": str(exporter.port), "RQ_EXPORTER_WEB_CONFIG_FILE": str(config)})
        assert result.returncode == 0, result.stderr
        # Told plain HTTP, it fails: the exporter answers only TLS there.
        result = _check("--port", str(exporter.port))
        assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    finally:
        exporter.stop()


def test_the_main_process_flags_are_used_when_none_are_given(certs, tmp_path, monkeypatch):
    """In a container the check runs beside the exporter, PID 1: it reads that command line."""
    for name in list(os.environ):
        if name.startswith("RQ_"):
            monkeypatch.delenv(name)
    config = _web_config(tmp_path, certs)
    exporter = TlsExporter(*NO_REDIS, "--web-config-file", str(config))
    try:
        cmdline = Path(f"/proc/{exporter.process.pid}/cmdline")
        assert healthcheck.exporter_args(cmdline)[-2:] == ["--web-config-file", str(config)]
        assert healthcheck.main([], main_process=cmdline) == 0
        # Something else as PID 1: the exporter's defaults (port 9726, where nothing of ours listens here).
        other = tmp_path / "cmdline"
        other.write_bytes(b"/pause\0")
        assert healthcheck.exporter_args(other) is None
    finally:
        exporter.stop()


def test_nothing_listening_is_exit_1_in_one_line():
    result = _check("--host", "127.0.0.1", "--port", str(free_port()))
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("rq-exporter --healthcheck: http://127.0.0.1:")


def test_wrong_settings_are_exit_2():
    result = _check("--port", "x")
    assert result.returncode == 2 and "--port" in result.stderr
    result = _check("--web-config-file", "/nonexistent.yml")
    assert result.returncode == 2 and "--web-config-file" in result.stderr


def test_the_dockerfile_healthcheck_is_this_check_and_passes_against_tls(certs, tmp_path):
    """The image's HEALTHCHECK command, run as docker runs it (the container's environment) against
    an exporter serving TLS on another port."""
    line = next(li for li in (ROOT / "Dockerfile").read_text().splitlines() if li.strip().startswith("CMD ["))
    command = json.loads(line.strip().removeprefix("CMD "))
    assert command == ["rq-exporter", "--healthcheck"]
    config = _web_config(tmp_path, certs)
    env = {"RQ_EXPORTER_WEB_CONFIG_FILE": str(config)}
    exporter = TlsExporter(*NO_REDIS, env=env)
    try:
        env["RQ_EXPORTER_PORT"] = str(exporter.port)
        assert _check(*command[2:], env=env).returncode == 0
    finally:
        exporter.stop()
    result = _check(*command[2:], env=env)
    assert result.returncode == 1 and "https://127.0.0.1:" in result.stderr
