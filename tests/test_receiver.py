"""demo/receiver.py: Alertmanager's webhook payload (version 4, as Alertmanager 0.25 sends it) ->
console lines and the page; the HTTP server on a loopback port. The real Alertmanager delivering
to it is tests/test_e2e_alertmanager.py."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from demo import receiver
from devkit import free_port, http_ok, stop_process, wait_for
from support import ROOT

RUNBOOK = "https://example.org/docs/runbooks.md#rqqueuewithoutworkers"
PAYLOAD = {
    "version": "4", "receiver": "console", "status": "firing", "groupKey": '{}:{alertname="RQQueueWithoutWorkers"}',
    "groupLabels": {"alertname": "RQQueueWithoutWorkers"}, "commonLabels": {}, "commonAnnotations": {},
    "externalURL": "http://am:9093", "truncatedAlerts": 0,
    "alerts": [
        {"status": "firing", "labels": {"alertname": "RQQueueWithoutWorkers", "severity": "critical",
                                        "queue": "orphan", "instance": "rq-exporter:9726", "job": "rq"},
         "annotations": {"summary": "An RQ queue has jobs and no worker.",
                         "description": "Queue orphan holds 3 queued jobs <and no worker>.", "runbook_url": RUNBOOK},
         "startsAt": "2026-12-01T20:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "abc"},
        {"status": "resolved", "labels": {"alertname": "RQAllWorkersGone"}, "annotations": {},
         "startsAt": "2026-12-01T19:00:00Z", "endsAt": "2026-12-01T19:30:00Z"},
    ],
}


def test_each_alert_of_a_delivery_is_one_notification():
    firing, resolved = receiver.parse(PAYLOAD, "now")
    assert (firing.status, firing.alertname, firing.queue, firing.severity) == ("firing", "RQQueueWithoutWorkers",
                                                                                 "orphan", "critical")
    assert firing.runbook_url == RUNBOOK and firing.receiver == "console"
    assert (resolved.status, resolved.alertname, resolved.queue, resolved.summary) == ("resolved", "RQAllWorkersGone",
                                                                                       "", "")


def test_the_console_line_names_everything_a_person_needs():
    out = io.StringIO()
    receiver.Inbox(out=out).add(PAYLOAD)
    first, second = out.getvalue().splitlines()
    assert first == ("[FIRING] RQQueueWithoutWorkers (critical) queue=orphan instance=rq-exporter:9726: An RQ queue "
                     f"has jobs and no worker. Queue orphan holds 3 queued jobs <and no worker>. runbook: {RUNBOOK}")
    assert second.startswith("[RESOLVED] RQAllWorkersGone (no severity)")


def test_the_page_lists_newest_first_and_escapes():
    inbox = receiver.Inbox()
    inbox.add(PAYLOAD)
    html = receiver.page(inbox.newest_first())
    assert html.index("RQAllWorkersGone") < html.index("RQQueueWithoutWorkers")
    assert "&lt;and no worker&gt;" in html and "<and no worker>" not in html
    assert f'href="{RUNBOOK}"' in html


def test_a_malformed_payload_is_refused_and_the_rest_kept(tmp_path):
    port = free_port()
    server = receiver.serve("127.0.0.1", port, receiver.Inbox())
    base = f"http://127.0.0.1:{port}"
    try:
        post = urllib.request.Request(base + "/", data=b"[1, 2]", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(post, timeout=5)
        assert refused.value.code == 400
        ok = urllib.request.Request(base + "/", data=json.dumps(PAYLOAD).encode(), method="POST",
                                    headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(ok, timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(base + "/api/notifications", timeout=5) as response:
            kept = json.load(response)
        assert [n["alertname"] for n in kept] == ["RQAllWorkersGone", "RQQueueWithoutWorkers"]
    finally:
        server.shutdown()
        server.server_close()


def test_the_listening_line_is_written_before_any_request_is_served():
    # A webhook that arrived as soon as the port answered was once printed above the listening line.
    port = free_port()
    out = io.StringIO()
    serving_when_listening = []
    before = set(threading.enumerate())

    def listening():
        serving_when_listening.append(any(t.name == "receiver" for t in set(threading.enumerate()) - before))
        out.write("listening\n")

    server = receiver.serve("127.0.0.1", port, receiver.Inbox(out=out), listening)
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=json.dumps(PAYLOAD).encode(),
                                         method="POST")
        urllib.request.urlopen(request, timeout=5).close()
    finally:
        server.shutdown()
        server.server_close()
    assert serving_when_listening == [False]
    lines = out.getvalue().splitlines()
    assert lines[0] == "listening" and lines[1].startswith("[FIRING] RQQueueWithoutWorkers")


def test_it_runs_as_a_module_as_the_compose_service_does():
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "demo.receiver", "--port", str(port)], cwd=ROOT,
                               stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), timeout=10, what="the receiver")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=json.dumps(PAYLOAD).encode(),
                                         method="POST")
        urllib.request.urlopen(request, timeout=5).close()
    finally:
        stop_process(process, 10)
    assert process.returncode == 0
    lines = process.stdout.read().splitlines()
    assert lines[0].startswith(f"receiver: listening on http://127.0.0.1:{port}/")
    assert lines[1].startswith("[FIRING] RQQueueWithoutWorkers") and lines[2].startswith("[RESOLVED]")
