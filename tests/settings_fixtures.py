"""What the settings tests (tests/test_settings_*.py) share: the secret no message may show, an
environment without the caller's RQ_* variables, a password file and real TLS files.

A test module imports the fixtures it uses (pytest finds them among its names); certs and files are
defined as certs_fixture and files_fixture, so that a test's parameter does not shadow the import."""

from __future__ import annotations

import os

import pytest

SECRET = "hunter2-s3cr3t"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No RQ_* variable from the caller's shell may leak into these tests."""
    for name in list(os.environ):
        if name.startswith("RQ_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module", name="certs")
def certs_fixture(tmp_path_factory):
    from certs import make_certs

    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(name="files")
def files_fixture(tmp_path, certs) -> dict[str, str]:
    """A password file and real TLS files (settings load them, as the connection will)."""
    password = tmp_path / "password"
    password.write_text(f"{SECRET}\n")
    return {"password": str(password), "ca": str(certs.ca), "cert": str(certs.client_cert),
            "key": str(certs.client_key)}
