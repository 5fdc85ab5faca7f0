"""Real X.509 certificates for the TLS tests, made with the openssl command line.

One CA signs a server certificate (for 127.0.0.1 and localhost) and a client certificate;
a second, unrelated CA signs a client certificate that must be refused.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import redis

from support import RedisServer, require_tool


@dataclass(frozen=True)
class Certs:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # signed by another CA
    rogue_key: Path


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)


# Python 3.13 verifies strictly (VERIFY_X509_STRICT): a CA needs its key usage, a certificate the
# key identifier of the CA that signed it.
CA_EXTENSIONS = ("basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign",
                 "subjectKeyIdentifier=hash")
SIGNED_EXTENSIONS = "authorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\n"


# As some managed Redis services' certificates are (Memorystore's): no Authority Key Identifier,
# which Python 3.13's strict checks refuse ("Missing Authority Key Identifier").
NO_AKI = "authorityKeyIdentifier=none"


def _ca(name: str, cwd: Path, aki: bool = True) -> None:
    extensions = CA_EXTENSIONS if aki else (*CA_EXTENSIONS, NO_AKI)
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
         *(arg for ext in extensions for arg in ("-addext", ext)),
         "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=cwd)


def _signed(name: str, ca: str, extensions: str, cwd: Path, aki: bool = True) -> None:
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
         "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=cwd)
    base = SIGNED_EXTENSIONS if aki else f"{NO_AKI}\nsubjectKeyIdentifier=hash\n"
    (cwd / f"{name}.ext").write_text(base + extensions)
    _run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
         "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=cwd)


def make_certs(directory: Path, aki: bool = True) -> Certs:
    """``aki=False``: the CA and the certificates it signs without Authority Key Identifiers."""
    require_tool("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    _ca("ca", directory, aki)
    _ca("rogue-ca", directory)
    _signed("server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n", directory,
            aki)
    _signed("client", "ca", "extendedKeyUsage=clientAuth\n", directory, aki)
    _signed("rogue", "rogue-ca", "extendedKeyUsage=clientAuth\n", directory)
    d = directory
    return Certs(d, d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key",
                 d / "rogue.crt", d / "rogue.key")


def new_server_cert(certs: Certs, name: str) -> tuple[Path, Path]:
    """Another server certificate (new key, new serial) from the same CA, as a renewal makes."""
    _signed(name, "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n", certs.dir)
    return certs.dir / f"{name}.crt", certs.dir / f"{name}.key"


class TlsRedis(RedisServer):
    """redis-server serving TLS only (no plain port) with the server certificate of ``certs``;
    ``verify_clients``: clients must show a certificate of its CA (client() does)."""

    def __init__(self, certs: Certs, verify_clients: bool = True) -> None:
        self.certs = certs
        self.verify_clients = verify_clients
        super().__init__()
        self.extra = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(certs.server_cert),
                      "--tls-key-file", str(certs.server_key), "--tls-ca-cert-file", str(certs.ca),
                      "--tls-auth-clients", "yes" if verify_clients else "optional"]

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def client(self, **options) -> redis.Redis:
        if self.verify_clients:
            options = {"ssl_certfile": str(self.certs.client_cert), "ssl_keyfile": str(self.certs.client_key),
                       **options}
        return redis.Redis(port=self.port, ssl=True, ssl_ca_certs=str(self.certs.ca), **options)
