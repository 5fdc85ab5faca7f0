"""The package as pip builds it: an SPDX license expression, and no warning of setuptools about the
project's own metadata (setuptools deprecated the `license = {text = ...}` table: builds that keep it
stop working in 2027)."""

from __future__ import annotations

import shutil
import zipfile

from support import ROOT, build_wheel


def test_the_wheel_builds_without_warnings_and_declares_its_license(tmp_path):
    wheel = build_wheel(ROOT, tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in archive.namelist())
        # Our package alone: nothing of a stale build/ (rq-exporter's rq_exporter/, which
        # uninstalling ours would then take away from an rq-exporter installed beside it).
        tops = {n.split("/")[0] for n in archive.namelist()}
        assert {t for t in tops if not t.endswith(".dist-info")} == {"rq_exporter_ng"}, tops
    assert "License-Expression: MIT" in text.splitlines()


def test_the_images_copies_hold_all_its_build_needs(tmp_path):
    """The Dockerfile's COPY lines, replayed into an empty directory, hold all that `pip install .`
    needs (no Docker engine here: the build itself is the check; without LICENSE setuptools warns
    that such builds stop working in 2027)."""
    app = tmp_path / "app"
    app.mkdir()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if not words or words[0] != "COPY" or any(w.startswith("--") for w in words):
            continue
        *sources, target = words[1:]
        for source in sources:
            path = ROOT / source
            destination = app / target / path.name if target.endswith("/") else app / target
            if path.is_dir():
                shutil.copytree(path, destination, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(path, destination)
    build_wheel(app, tmp_path / "out")
