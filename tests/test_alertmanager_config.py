"""The bundle's Alertmanager configurations: prometheus/alertmanager.yml (to the bundle's receiver)
and the ready-to-enable receivers of prometheus/alertmanager/*.yml, checked by the real amtool with
dummy secret files in place, routed by severity as the README says, rendering rq.tmpl; and the real
Alertmanager delivering an alert through the Slack, PagerDuty and webhook variants to a local
server standing in for those services (what goes out is what the test inspects)."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import shutil
import subprocess
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from devkit import free_port, http_ok, run, stop_process, wait_for
from support import ROOT, require_tool

PROMETHEUS = ROOT / "prometheus"
DEFAULT = PROMETHEUS / "alertmanager.yml"
VARIANTS = sorted((PROMETHEUS / "alertmanager").glob("*.yml"))
SECRETS = "/etc/alertmanager/secrets/"  # where the variants read their secrets (compose mounts it)
SECRET_KEYS = ("api_url_file", "auth_password_file", "smtp_auth_password_file", "routing_key_file",
               "service_key_file", "credentials_file", "password_file")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def secret_files(node: object) -> list[str]:
    """Every *_file value of a config, wherever it is nested."""
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k in SECRET_KEYS and isinstance(v, str)]
        return found + [f for v in node.values() for f in secret_files(v)]
    if isinstance(node, list):
        return [f for v in node for f in secret_files(v)]
    return []


def amtool(*args: str) -> subprocess.CompletedProcess:
    return run([require_tool("amtool"), *args], capture_output=True, text=True, idle=60)


@pytest.fixture
def installed(tmp_path) -> Path:
    """prometheus/ copied to tmp_path with every secret path pointing at a dummy file there."""
    copy = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS / "alertmanager", copy / "alertmanager")
    shutil.copy(DEFAULT, copy / "alertmanager.yml")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for variant in (copy / "alertmanager").glob("*.yml"):
        text = variant.read_text()
        for path in secret_files(yaml.safe_load(text)):
            (secrets / Path(path).name).write_text("dummy-secret")  # as the README writes them: printf, no newline
        variant.write_text(text.replace(SECRETS, f"{secrets}/"))
    return copy


def test_there_is_a_variant_for_each_integration():
    integrations = {key for v in VARIANTS for r in load(v)["receivers"] for key in r if key.endswith("_configs")}
    assert {"slack_configs", "email_configs", "pagerduty_configs", "webhook_configs"} <= integrations


def test_every_secret_is_read_from_a_file_under_the_secrets_directory():
    for variant in VARIANTS:
        text = variant.read_text()
        files = secret_files(load(variant))
        assert files, variant.name
        assert all(f.startswith(SECRETS) for f in files), (variant.name, files)
        # No secret written in the file itself.
        for key in ("api_url:", "auth_password:", "routing_key:", "service_key:", "credentials:"):
            assert key not in text.replace("_file:", ""), (variant.name, key)


@pytest.mark.promtool
def test_amtool_accepts_every_variant_with_its_secret_files(installed):
    checked = 0
    for config in [installed / "alertmanager.yml", *sorted((installed / "alertmanager").glob("*.yml"))]:
        for path in secret_files(load(config)):
            assert Path(path).is_file(), (config.name, path)
        result = amtool("check-config", str(config))
        assert result.returncode == 0, (config.name, result.stdout + result.stderr)
        assert "1 templates" in result.stdout, (config.name, result.stdout)  # rq.tmpl found and parsed
        checked += 1
    assert checked == len(VARIANTS) + 1 >= 4


@pytest.mark.promtool
def test_critical_alerts_page_and_the_others_go_to_chat(installed):
    for variant in sorted((installed / "alertmanager").glob("*.yml")):
        def receivers(*labels: str, config: Path = variant) -> set[str]:
            result = amtool("config", "routes", "test", f"--config.file={config}", *labels)
            assert result.returncode == 0, result.stderr
            return set(result.stdout.strip().split(","))

        assert "page" in receivers("alertname=RQAllWorkersGone", "severity=critical"), variant.name
        for severity in ("warning", "info"):
            assert receivers("alertname=RQJobFailuresGrowing", f"severity={severity}") == {"chat"}, variant.name
    assert receivers("severity=critical", config=installed / "alertmanager.yml") == {"console"}


def test_variants_group_and_inhibit_as_the_bundle_does():
    default = load(DEFAULT)
    for variant in VARIANTS:
        config = load(variant)
        assert config["inhibit_rules"] == default["inhibit_rules"], variant.name
        for key in ("group_by", "group_wait", "group_interval", "repeat_interval"):
            assert config["route"][key] == default["route"][key], (variant.name, key)
        assert config["templates"] == ["rq.tmpl"], variant.name


def test_the_default_route_delivers_to_the_bundle_receiver():
    config = load(DEFAULT)
    (console,) = [r for r in config["receivers"] if r["name"] == config["route"]["receiver"]]
    (webhook,) = console["webhook_configs"]
    assert webhook["send_resolved"] is True
    assert webhook["url"].startswith("http://rq-notifications:")  # the compose service
    assert not config["route"].get("routes")  # every alert, whatever its severity


@pytest.mark.promtool
def test_the_template_renders_summary_description_and_links():
    text = ('{{ template "rq.title" . }}|{{ template "rq.text" . }}|{{ template "rq.email.html" . }}')
    result = amtool("template", "render", f"--template.glob={PROMETHEUS / 'alertmanager' / 'rq.tmpl'}",
                    f"--template.text={text}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("|") == 2
    template = (PROMETHEUS / "alertmanager" / "rq.tmpl").read_text()
    for annotation in ("summary", "description", "runbook_url", "dashboard_url"):
        assert template.count(f".Annotations.{annotation}") >= 2, annotation  # text and HTML


class Capture:
    """An HTTP server on a loopback port keeping every request (path, headers, JSON body)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict, dict]] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                requests.append((self.path, dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def by_path(self) -> dict[str, tuple[dict, dict]]:
        return {path: (headers, body) for path, headers, body in self.requests}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


ALERT = {
    "labels": {"alertname": "RQQueueWithoutWorkers", "severity": "critical", "queue": "orphan",
               "job": "rq", "instance": "rq-exporter:9726"},
    "annotations": {"summary": "An RQ queue has jobs and no worker.",
                    "description": "Queue orphan (rq-exporter:9726) holds 3 queued jobs and no worker listens on it.",
                    "runbook_url": "https://example.org/runbooks.md#rqqueuewithoutworkers",
                    "dashboard_url": "http://grafana.example.org/d/rq-queue?var-queue=orphan"},
}


def deliver(config: Path, capture: Capture, paths: set[str], tmp_path: Path) -> dict[str, tuple[dict, dict]]:
    """The real Alertmanager on ``config``, one alert posted to its API; the requests it made."""
    port = free_port()
    process = subprocess.Popen([require_tool("prometheus-alertmanager"), f"--config.file={config}",
                                f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
                                "--cluster.listen-address="], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"), timeout=20, interval=0.1, what="Alertmanager")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v2/alerts", data=json.dumps([ALERT]).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).close()
        wait_for(lambda: paths <= set(capture.by_path()), timeout=20, interval=0.2, what=f"deliveries to {paths}")
    finally:
        stop_process(process, 10)
    return capture.by_path()


def quick(config: Path, edit) -> Path:
    """The variant with no group_wait and ``edit`` applied (receivers pointed at the capture)."""
    loaded = load(config)
    loaded["route"]["group_wait"] = "0s"
    edit(loaded)
    config.write_text(yaml.safe_dump(loaded, sort_keys=False))
    return config


@pytest.mark.promtool
def test_slack_and_pagerduty_messages_carry_summary_description_and_links(installed, tmp_path):
    capture = Capture()
    secrets = tmp_path / "secrets"
    (secrets / "slack-webhook-url").write_text(capture.url + "/slack")
    config = installed / "alertmanager" / "slack-pagerduty.yml"

    def edit(loaded: dict) -> None:
        page = next(r for r in loaded["receivers"] if r["name"] == "page")
        page["pagerduty_configs"][0]["url"] = capture.url + "/pagerduty"  # instead of PagerDuty's API

    try:
        got = deliver(quick(config, edit), capture, {"/slack", "/pagerduty"}, tmp_path)
    finally:
        capture.stop()
    (attachment,) = got["/slack"][1]["attachments"]
    assert attachment["title"] == "[FIRING:1] RQQueueWithoutWorkers queue orphan (rq-exporter:9726)"
    assert attachment["title_link"] == ALERT["annotations"]["runbook_url"]
    pagerduty = got["/pagerduty"][1]
    assert pagerduty["routing_key"] == "dummy-secret" and pagerduty["event_action"] == "trigger"
    assert pagerduty["payload"]["summary"] == attachment["title"]
    details = pagerduty["payload"]["custom_details"]
    for text in (attachment["text"], details["alerts"]):
        for annotation in ALERT["annotations"].values():
            assert annotation in text, (annotation, text)
    assert details["runbook"] == ALERT["annotations"]["runbook_url"]
    assert details["dashboard"] == ALERT["annotations"]["dashboard_url"]


@pytest.mark.promtool
def test_the_webhook_variant_sends_the_token_of_its_secret_file(installed, tmp_path):
    capture = Capture()
    config = installed / "alertmanager" / "webhook.yml"

    def edit(loaded: dict) -> None:
        for receiver in loaded["receivers"]:
            receiver["webhook_configs"][0]["url"] = f"{capture.url}/{receiver['name']}"

    try:
        got = deliver(quick(config, edit), capture, {"/page"}, tmp_path)
    finally:
        capture.stop()
    headers, body = got["/page"]
    assert headers["Authorization"] == "Bearer dummy-secret"
    (alert,) = body["alerts"]
    assert alert["annotations"] == ALERT["annotations"] and alert["status"] == "firing"
    assert "/chat" not in got  # critical: the paging endpoint only


class SMTPCapture:
    """Just enough of an SMTP server on a loopback port (EHLO, AUTH PLAIN, MAIL, RCPT, DATA) to
    receive Alertmanager's email: keeps the credentials and each message."""

    def __init__(self) -> None:
        import socketserver

        self.logins: list[str] = []
        self.messages: list[str] = []
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self) -> None:
                self.reply("220 127.0.0.1 ESMTP test")
                while line := self.rfile.readline().decode().rstrip("\r\n"):
                    verb = line.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250-127.0.0.1")
                        self.reply("250 AUTH PLAIN")
                    elif verb == "AUTH":
                        parts = line.split()
                        if len(parts) == 2:
                            self.reply("334 ")
                            parts.append(self.rfile.readline().decode().strip())
                        owner.logins.append(base64.b64decode(parts[2]).decode())
                        self.reply("235 2.7.0 accepted")
                    elif verb == "DATA":
                        self.reply("354 go on")
                        lines = []
                        while (data := self.rfile.readline().decode()) not in (".\r\n", ""):
                            lines.append(data)
                        owner.messages.append("".join(lines))
                        self.reply("250 queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:  # MAIL, RCPT, RSET, NOOP
                        self.reply("250 ok")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.promtool
def test_the_email_variant_logs_in_with_its_password_file_and_mails_the_links(installed, tmp_path):
    smtp = SMTPCapture()
    config = installed / "alertmanager" / "email.yml"

    def edit(loaded: dict) -> None:
        loaded["global"]["smtp_smarthost"] = smtp.address
        loaded["global"]["smtp_require_tls"] = False  # no STARTTLS on this test server

    try:
        config = quick(config, edit)
        port = free_port()
        process = subprocess.Popen([require_tool("prometheus-alertmanager"), f"--config.file={config}",
                                    f"--storage.path={tmp_path / 'am-data'}",
                                    f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"), timeout=20, interval=0.1,
                     what="Alertmanager")
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v2/alerts",
                                             data=json.dumps([ALERT]).encode(), method="POST",
                                             headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=10).close()
            wait_for(lambda: smtp.messages, timeout=20, interval=0.2, what="the email")
        finally:
            stop_process(process, 10)
    finally:
        smtp.stop()
    assert smtp.logins == ["\0rq-alerts@example.com\0dummy-secret"]
    message = email.message_from_string(smtp.messages[0], policy=email.policy.default)
    assert message["To"] == "oncall@example.com"  # critical: the on-call address
    assert message["Subject"] == "[FIRING:1] RQQueueWithoutWorkers queue orphan (rq-exporter:9726)"
    parts = {part.get_content_type(): part.get_content() for part in message.walk() if not part.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    for annotation in ALERT["annotations"].values():
        assert annotation in parts["text/plain"], annotation
    assert f'<a href="{ALERT["annotations"]["runbook_url"]}">Runbook</a>' in parts["text/html"]
