"""The package as pip builds it: an SPDX license expression, and no warning of setuptools about the
project's own metadata (setuptools deprecated the `license = {text = ...}` table: builds that keep it
stop working in 2027)."""

from __future__ import annotations

import zipfile

from devkit import run
from support import ROOT


def test_the_wheel_builds_without_warnings_and_declares_its_license(tmp_path):
    uv = ROOT / ".venv-tools" / "bin" / "uv"  # scripts/envs.sh installs it from locks/tools.txt
    assert uv.exists(), "run scripts/venv.sh (make test does) to install uv"
    build = run([str(uv), "build", "--wheel", "--no-progress", "-o", str(tmp_path), str(ROOT)],
                cwd=ROOT, text=True, idle=120)
    assert build.returncode == 0, build.stderr
    # Deprecations reach the log as SetuptoolsDeprecationWarning / "is deprecated" blocks.
    assert "deprecat" not in build.stderr.lower(), build.stderr
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in archive.namelist())
    assert "License-Expression: MIT" in text.splitlines()
