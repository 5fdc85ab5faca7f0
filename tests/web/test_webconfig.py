"""TLS and basic auth of the HTTP endpoint (exporter-toolkit web config), with real certificates,
real HTTPS requests and the real exporter process."""

from __future__ import annotations

import base64
import http.client
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
from certs import Certs, make_certs, new_server_cert

from devkit import free_port
from support import Exporter, main_in_process, parse_samples, run_exporter

PASSWORD = "s3cret pass:word"


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


class HttpsExporter(Exporter):
    """The exporter process serving HTTPS with a web config file."""

    def __init__(self, config: Path, redis_url: str, ca: Path, client: tuple[Path, Path] | None = None) -> None:
        self.context = ssl.create_default_context(cafile=str(ca))
        if client:
            self.context.load_cert_chain(str(client[0]), str(client[1]))
        super().__init__("--redis-url", redis_url, "--web-config-file", str(config))

    def _serves(self) -> bool:
        try:
            return self.get("/healthz")[0] == 200
        except (OSError, ssl.SSLError):
            return False

    def get(self, path: str, auth: tuple[str, str] | None = None, context: ssl.SSLContext | None = None):
        headers = {}
        if auth:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request = urllib.request.Request(self.base.replace("http://", "https://") + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10, context=context or self.context) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode()


def _config(directory: Path, text: str) -> Path:
    path = directory / "web.yml"
    path.write_text(text)
    return path


@pytest.mark.redis
def test_https_with_basic_auth(certs, redis_db, tmp_path):
    config = _config(tmp_path, f"""
tls_server_config:
  cert_file: {certs.server_cert}
  key_file: {certs.server_key}
basic_auth_users:
  prometheus: '{_hash(PASSWORD)}'
  other: '{"$2y$" + _hash("another")[4:]}'
""")
    exporter = HttpsExporter(config, redis_db.url, certs.ca)
    try:
        status, _, body = exporter.get("/metrics", ("prometheus", PASSWORD))
        assert status == 200
        assert parse_samples(body).value("rq_up") == 1
        # A right password is remembered; a wrong one afterwards must still be refused.
        for auth in [None, ("prometheus", "wrong"), ("nobody", PASSWORD), ("other", PASSWORD),
                     ("prometheus", PASSWORD + "x"), ("prometheus", ""), ("prometheus", "p" * 100)]:
            status, headers, _ = exporter.get("/metrics", auth)
            assert status == 401, auth
            assert headers["WWW-Authenticate"].startswith("Basic realm=")
        assert exporter.get("/", ("other", "another"))[0] == 200  # a $2y$ hash, as htpasswd -B writes
        assert exporter.get("/probe?target=x")[0] == 401  # every path but the health check needs auth
        assert exporter.get("/healthz")[0] == 200  # liveness probes need no password
        # Clients that connect and never start the handshake hold no one else up.
        silent = [socket.create_connection(("127.0.0.1", exporter.port), timeout=5) for _ in range(5)]
        try:
            assert exporter.get("/metrics", ("prometheus", PASSWORD))[0] == 200
        finally:
            for sock in silent:
                sock.close()
        # A garbled header is a 401, not a 500.
        connection = http.client.HTTPSConnection("127.0.0.1", exporter.port, context=exporter.context, timeout=5)
        connection.request("GET", "/metrics", headers={"Authorization": "Basic !!!not-base64"})
        assert connection.getresponse().status == 401
        connection.close()
        # Plain HTTP on the TLS port gets no metrics.
        with pytest.raises((OSError, http.client.HTTPException)):
            urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/healthz", timeout=5).read()
        # A client that does not trust the server's CA refuses it.
        with pytest.raises(urllib.error.URLError):
            exporter.get("/healthz", context=ssl.create_default_context())
    finally:
        exporter.stop()


@pytest.mark.redis
def test_cipher_suites_and_headers_as_another_exporters_file_sets_them(certs, redis_db, tmp_path):
    """exporter-toolkit's cipher_suites (Go's names), prefer_server_cipher_suites, http2 and
    http_server_config.headers: a hardened file copied from another exporter is served as it says."""
    config = _config(tmp_path, f"""
tls_server_config:
  cert_file: {certs.server_cert}
  key_file: {certs.server_key}
  max_version: TLS12
  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256]
  prefer_server_cipher_suites: true
http_server_config:
  http2: true
  headers:
    Strict-Transport-Security: max-age=31536000; includeSubDomains
    X-Content-Type-Options: nosniff
    X-Frame-Options: deny
    Content-Security-Policy: ''
basic_auth_users:
  prometheus: '{_hash(PASSWORD)}'
""")
    exporter = HttpsExporter(config, redis_db.url, certs.ca)
    try:
        hardened = {"Strict-Transport-Security": "max-age=31536000; includeSubDomains",
                    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "deny"}
        for path, auth, expected in (("/metrics", ("prometheus", PASSWORD), 200), ("/metrics", None, 401),
                                     ("/healthz", None, 200)):
            status, headers, _ = exporter.get(path, auth)
            assert status == expected
            assert {name: headers.get(name) for name in hardened} == hardened, (path, headers)
            assert "Content-Security-Policy" not in headers  # blank: unset, as in exporter-toolkit
        with socket.create_connection(("127.0.0.1", exporter.port), timeout=5) as raw, \
                exporter.context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.cipher()[0] == "ECDHE-RSA-AES256-GCM-SHA384" and tls.version() == "TLSv1.2"
        # A client that offers only a suite the file leaves out gets no connection.
        other = ssl.create_default_context(cafile=str(certs.ca))
        other.maximum_version = ssl.TLSVersion.TLSv1_2
        other.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
        with pytest.raises(ssl.SSLError), socket.create_connection(("127.0.0.1", exporter.port), timeout=5) as raw:
            other.wrap_socket(raw, server_hostname="127.0.0.1").close()
    finally:
        exporter.stop()


@pytest.mark.redis
def test_client_certificates_are_required_and_verified(certs, redis_db, tmp_path):
    config = _config(tmp_path, f"""
tls_server_config:
  cert_file: {certs.server_cert}
  key_file: {certs.server_key}
  client_ca_file: {certs.ca}
  client_auth_type: RequireAndVerifyClientCert
  min_version: TLS12
""")
    exporter = HttpsExporter(config, redis_db.url, certs.ca, client=(certs.client_cert, certs.client_key))
    try:
        status, _, body = exporter.get("/metrics")
        assert status == 200 and parse_samples(body).value("rq_up") == 1
        without = ssl.create_default_context(cafile=str(certs.ca))
        rogue = ssl.create_default_context(cafile=str(certs.ca))
        rogue.load_cert_chain(str(certs.rogue_cert), str(certs.rogue_key))
        for context in (without, rogue):
            with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError, http.client.HTTPException)):
                exporter.get("/metrics", context=context)
        assert exporter.get("/healthz")[0] == 200  # the server still serves after refused handshakes
    finally:
        exporter.stop()


def _served_serial(exporter: HttpsExporter) -> str:
    with socket.create_connection(("127.0.0.1", exporter.port), timeout=5) as raw, \
            exporter.context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        return tls.getpeercert()["serialNumber"]


@pytest.mark.redis
def test_renewed_certificate_is_served_without_restart(certs, redis_db, tmp_path):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(certs.server_cert, cert)
    shutil.copy(certs.server_key, key)
    config = _config(tmp_path, "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n")
    exporter = HttpsExporter(config, redis_db.url, certs.ca)
    try:
        before = _served_serial(exporter)
        renewed_cert, renewed_key = new_server_cert(certs, f"renewed-{tmp_path.name}")
        # Half-way through a renewal (new certificate, old key) the old pair keeps being served.
        shutil.copy(renewed_cert, cert)
        assert _served_serial(exporter) == before
        assert exporter.get("/healthz")[0] == 200
        shutil.copy(renewed_key, key)
        after = _served_serial(exporter)
        assert after != before
        status, _, body = exporter.get("/metrics")
        assert status == 200 and parse_samples(body).value("rq_up") == 1
    finally:
        log = exporter.stop()
    assert "keeping the previous TLS certificate" in log and "reloaded" in log


def _start_with(config: Path) -> subprocess.CompletedProcess:
    return main_in_process("--port", str(free_port()), "--web-config-file", str(config))


@pytest.mark.parametrize("text, named", [
    ("tls_server_config:\n  cert_file: {cert}\n", "tls_server_config: cert_file and key_file are both required"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: /nonexistent.key\n", "tls_server_config.key_file: no such file"),
    ("tls_server_config:\n  cert_file: {key}\n  key_file: {key}\n", "tls_server_config.cert_file/key_file: cannot load"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  client_auth_type: RequireAndVerifyClientCert\n",
     "tls_server_config.client_ca_file: required"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  client_auth_type: RequestClientCert\n",
     "tls_server_config.client_auth_type"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  min_version: SSL3\n", "tls_server_config.min_version"),
    ("tls_server_config:\n  cert_file: {cert}\n  kye_file: {key}\n", "tls_server_config.kye_file: unknown key"),
    ("basic_auth_users:\n  prometheus: plaintext-password\n", "basic_auth_users.prometheus: not a bcrypt hash"),
    ("basic_auth_users: [a, b]\n", "basic_auth_users: must be a mapping"),
    ("basic_auth: {{}}\n", "basic_auth: unknown key"),
    ("tls_server_config: [\n", "not valid YAML"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  client_auth_type: [1]\n",
     "tls_server_config.client_auth_type"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  max_version: {{a: 1}}\n",
     "tls_server_config.max_version"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  min_version: TLS13\n  max_version: TLS12\n",
     "min_version TLS13 is above max_version TLS12"),
    ("basic_auth_users:\n  a: $2y$10$x\n  a: $2y$10$y\n", "'a' is given twice at line 3"),
    ("basic_auth_users:\n  ? {{a: 1}}\n  : x\n", "found unhashable key at line 2"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
     "tls_server_config.cipher_suites: 'TLS_RSA_WITH_RC4_128_SHA' is not one of"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  cipher_suites: TLS_AES_128_GCM_SHA256\n",
     "tls_server_config.cipher_suites: must be a list"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  prefer_server_cipher_suites: yes please\n",
     "tls_server_config.prefer_server_cipher_suites: must be true or false"),
    # exporter-toolkit's keys that cannot be honoured here: refused, never ignored
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  curve_preferences: [X25519]\n",
     "tls_server_config.curve_preferences: Python's ssl module sets no list of curves"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  client_allowed_sans: [a]\n",
     "tls_server_config.client_allowed_sans: not supported"),
    ("rate_limit: {{interval: 1s, burst: 5}}\n", "rate_limit: not supported"),
    ("http_server_config:\n  headers:\n    X-Powered-By: me\n", "http_server_config.headers.X-Powered-By: not a header"),
    ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
     "http_server_config.headers.X-Frame-Options: 'allow' is not one of deny, sameorigin"),
    ("http_server_config:\n  headers: [a]\n", "http_server_config.headers: must be a mapping"),
    ("http_server_config:\n  http2: 2\n", "http_server_config.http2: must be true or false"),
    ("http_server_config:\n  keep_alive: true\n", "http_server_config.keep_alive: unknown key"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  min_version: TLS10\n",
     "tls_server_config.min_version: TLS10 is not served"),
    # below the default min_version (TLS12): no client could connect
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  max_version: TLS11\n",
     "tls_server_config.max_version: TLS11 is not served"),
])
def test_invalid_web_config_is_one_line_and_exit_2(certs, tmp_path, text, named):
    config = _config(tmp_path, text.format(cert=certs.server_cert, key=certs.server_key))
    result = _start_with(config)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rq-exporter: invalid setting --web-config-file (RQ_EXPORTER_WEB_CONFIG_FILE): ")
    assert named in lines[0]


def test_missing_web_config_file_is_exit_2(tmp_path):
    result = run_exporter("--port", str(free_port()), "--web-config-file", str(tmp_path / "absent.yml"))  # the real one
    assert result.returncode == 2
    assert "--web-config-file" in result.stderr and "cannot read" in result.stderr


@pytest.mark.parametrize("kind, named", [("fifo", "not a file"), ("directory", "not a file"),
                                         ("latin-1", "not UTF-8 text")])
def test_a_web_config_that_is_no_text_file_is_one_line_and_exit_2(tmp_path, kind, named):
    """A FIFO would block the start for ever; bytes that are no UTF-8 raised a traceback."""
    import os

    path = tmp_path / "web.yml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"basic_auth_users:\n  caf\xe9: x\n")
    result = _start_with(path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr
