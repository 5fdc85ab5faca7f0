"""demo/run.py's alerting set-up, as pure functions: the bundle's alertmanager.yml pointed at the local
receiver, and --alert-for applied to the bundled rules and Alertmanager's waits; and the demo refusing
a port another process holds. The demo running them for real is tests/test_e2e_alertmanager.py."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

import pytest
import yaml

import devkit
from demo import run
from devkit import free_port
from support import ROOT, require_tool

BASE = yaml.safe_load((ROOT / "prometheus" / "alertmanager.yml").read_text())


def test_alertmanager_config_delivers_to_the_local_receiver():
    config = run.alertmanager_config(BASE, "http://127.0.0.1:5555/", ROOT / "prometheus")
    (console,) = config["receivers"]
    assert console["webhook_configs"][0]["url"] == "http://127.0.0.1:5555/"
    assert all(Path(t).is_absolute() and Path(t).is_file() for t in config["templates"])
    assert config["route"] == BASE["route"] and config["inhibit_rules"] == BASE["inhibit_rules"]
    assert BASE["receivers"][0]["webhook_configs"][0]["url"].startswith("http://rq-notifications:")  # untouched


def test_alert_for_shortens_alertmanagers_waits_and_every_bundled_rule():
    config = run.alertmanager_config(BASE, "http://127.0.0.1:5555/", ROOT / "prometheus", "10s")
    assert (config["route"]["group_wait"], config["route"]["group_interval"]) == ("10s", "10s")
    rules = yaml.safe_load(run.bundle_rules("10s"))["groups"][0]["rules"]
    bundled = yaml.safe_load((ROOT / "prometheus" / "rules" / "rq-alerts.yml").read_text())["groups"][0]["rules"]
    assert {r["for"] for r in rules} == {"10s"}
    assert [(r["alert"], r["expr"]) for r in rules] == [(r["alert"], r["expr"]) for r in bundled]


@pytest.mark.parametrize("value", ["10", "ten", "10 s", ""])
def test_alert_for_refuses_what_is_no_prometheus_duration(value):
    with pytest.raises(argparse.ArgumentTypeError):
        run.duration(value)
    assert run.duration("1m30s") == "1m30s"


def test_prometheus_config_sends_to_the_local_alertmanager():
    base = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    config = run.prometheus_config(base, "127.0.0.1:1", ["/r.yml"], "5s", "127.0.0.1:2")
    assert config["alerting"]["alertmanagers"][0]["static_configs"] == [{"targets": ["127.0.0.1:2"]}]
    assert "alerting" not in run.prometheus_config(base, "127.0.0.1:1", ["/r.yml"], "5s")


@pytest.mark.workers  # demo.run would start them, had the port been free
def test_a_port_another_process_holds_is_refused_before_anything_starts():
    require_tool("redis-server")
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        result = devkit.run([sys.executable, "-m", "demo.run", "--redis-port", str(free_port()),
                             "--exporter-port", str(taken), "--no-prometheus", "--no-alertmanager",
                             "--no-schedules"], cwd=ROOT, text=True, idle=30)
    assert result.returncode == 1
    assert f"demo: another process listens on {taken} (--exporter-port)" in result.stderr
    assert "ready" not in result.stdout
