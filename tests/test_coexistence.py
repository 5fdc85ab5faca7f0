"""rq-exporter 3.1.0 and this exporter in one environment, as pip installs and uninstalls them.

rq-exporter 3.x installs the import package ``rq_exporter`` and the command ``rq-exporter``. Ours is
``rq_exporter_ng``, so no uninstall of the predecessor can delete a file of ours but the command
``rq-exporter``, which both provide (for drop-in use) and which ``rq-exporter-ng`` stands in for.
Each sequence runs in a throwaway environment: rq-exporter 3.1.0 and our runtime dependencies from
locks/peer.txt (hashes checked), our wheel built from this checkout, then pip as a user runs it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devkit import run
from support import ROOT, build_wheel

pytestmark = pytest.mark.slow

UV = ROOT / ".venv-tools" / "bin" / "uv"  # scripts/envs.sh installs it from locks/tools.txt


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(ROOT, tmp_path_factory.mktemp("wheel"))


class Env:
    """A new virtual environment with pip, rq-exporter 3.1.0 and our runtime dependencies."""

    def __init__(self, tmp: Path, with_peer: bool = True) -> None:
        self.dir = tmp / "venv"
        self.ok(str(UV), "venv", "-q", "--seed", "--python", "3.11", str(self.dir))
        lock = ROOT / "locks" / "peer.txt"
        self.ok(str(UV), "pip", "sync", "-q", "--python", str(self.python), "--require-hashes", str(lock))
        if not with_peer:  # the same dependencies without rq-exporter
            self.pip("uninstall", "-y", "rq-exporter")

    @property
    def python(self) -> Path:
        return self.dir / "bin" / "python"

    def ok(self, *argv: str) -> str:
        done = run(list(argv), text=True, idle=120)
        assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
        return done.stdout

    def pip(self, *args: str) -> str:
        # --no-index: every install here comes from a local wheel (the dependencies are in already)
        extra = ["--no-index", "--no-deps"] if args[0] == "install" else []
        return self.ok(str(self.python), "-m", "pip", "-q", *args, *extra)

    def version(self, *argv: str) -> subprocess.CompletedProcess:
        return run([*argv, "--version"], text=True, idle=60)

    def ours(self) -> None:
        """Our module and our own command work, whatever rq-exporter's state."""
        for argv in ([str(self.python), "-m", "rq_exporter_ng"], [str(self.dir / "bin" / "rq-exporter-ng")]):
            done = self.version(*argv)
            assert done.returncode == 0 and "rq-exporter" in done.stdout + done.stderr, (argv, done)

    def command(self) -> str:
        """Whose `rq-exporter` the bin directory holds: 'ours', 'theirs' or 'none'."""
        script = self.dir / "bin" / "rq-exporter"
        if not script.exists():
            return "none"
        return "ours" if "rq_exporter_ng" in script.read_text() else "theirs"

    def theirs_importable(self) -> bool:
        return run([str(self.python), "-c", "import rq_exporter.exporter"], idle=60).returncode == 0


def test_ours_over_rq_exporter_survives_its_uninstall(tmp_path, wheel):
    env = Env(tmp_path)
    assert env.theirs_importable() and env.command() == "theirs"
    env.pip("install", str(wheel))
    env.ours()
    assert env.command() == "ours"  # the drop-in command is ours now
    assert env.theirs_importable()  # and rq-exporter's package is still whole
    env.pip("uninstall", "-y", "rq-exporter")
    env.ours()  # nothing of ours went with it...
    assert not env.theirs_importable()
    # ...but the command both install: pip removes what rq-exporter's RECORD lists. The README's
    # migration note says so; reinstalling ours brings it back.
    assert env.command() == "none"
    env.pip("install", "--force-reinstall", str(wheel))
    assert env.command() == "ours"
    env.ours()


def test_the_migration_path_uninstall_then_install(tmp_path, wheel):
    env = Env(tmp_path)
    env.pip("uninstall", "-y", "rq-exporter")
    env.pip("install", str(wheel))
    env.ours()
    assert env.command() == "ours" and not env.theirs_importable()
    done = env.version(str(env.dir / "bin" / "rq-exporter"))
    assert done.returncode == 0, done


def test_rq_exporter_installed_after_ours_leaves_our_package_alone(tmp_path, wheel):
    env = Env(tmp_path, with_peer=False)
    env.pip("install", str(wheel))
    env.ours()
    # rq-exporter 3.1.0 back on top (its wheel from the uv cache the lock filled)
    env.ok(str(UV), "pip", "install", "-q", "--python", str(env.python), "--no-deps", "rq-exporter==3.1.0")
    assert env.theirs_importable() and env.command() == "theirs"
    env.ours()
    env.pip("uninstall", "-y", "rq-exporter-ng")
    assert env.theirs_importable()  # ours took nothing of rq-exporter's with it
