"""scripts/system-deps.sh as `make demo` and `make test` run it, for a user who is not root: the one
install line and exit 2 when a needed server is missing; the demo goes on without the wanted ones."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from devkit import run
from support import ROOT

SCRIPT = ROOT / "scripts" / "system-deps.sh"


def as_nobody(profile: str, present: tuple[str, ...] = ()) -> tuple[int, str]:
    """The script as user nobody, with a PATH holding only what it needs and the ``present`` servers."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to become another user")  # CI runs as root (util-linux has setpriv)
    # A directory nobody may enter (pytest's are the owner's alone); the script comes on stdin, as
    # the checkout may sit where nobody cannot read.
    bin_dir = Path(tempfile.mkdtemp(prefix="rq-system-deps-"))
    try:
        bin_dir.chmod(0o755)
        for tool in ("bash", "id", *present):
            (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
        done = run([shutil.which("setpriv") or "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                    str(bin_dir / "bash"), "-s", profile], input=SCRIPT.read_text(), env={"PATH": str(bin_dir)},
                   text=True, idle=30)
    finally:
        shutil.rmtree(bin_dir, ignore_errors=True)
    return done.returncode, done.stderr


def test_the_demo_without_redis_prints_the_install_line_and_exits_2():
    code, err = as_nobody("demo")
    assert code == 2, err
    assert err.strip().endswith("install with: sudo apt-get install -y redis-server prometheus prometheus-alertmanager")


def test_the_demo_without_prometheus_goes_on():
    code, err = as_nobody("demo", present=("redis-server",))
    assert code == 0, err
    assert "sudo apt-get install -y prometheus prometheus-alertmanager" in err


def test_the_tests_need_every_server():
    code, err = as_nobody("test", present=("redis-server", "prometheus"))
    assert code == 2 and "redis-sentinel" in err and "prometheus-alertmanager" in err, err
