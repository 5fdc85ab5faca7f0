"""docs/runbooks.md and the runbook_url of every alert: each alert has its section, and the URL's
anchor is the one GitHub (and most Markdown renderers) give that section's heading."""

from __future__ import annotations

import re

import yaml
from bundle import RULES, rule_generator

from support import ROOT

RUNBOOKS = ROOT / "docs" / "runbooks.md"


def slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation but - and _ dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def sections() -> dict[str, str]:
    """{anchor: body} of every second-level heading."""
    parts = re.split(r"^## (.+)$", RUNBOOKS.read_text(), flags=re.M)
    return {slug(title): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_every_alert_has_a_runbook_url_resolving_to_its_section():
    base = rule_generator().load_config()["runbook_url"]
    assert base.endswith("docs/runbooks.md"), base
    found = sections()
    for rule in alerts():
        url = rule["annotations"]["runbook_url"]
        page, anchor = url.split("#")
        assert page == base, rule["alert"]
        assert anchor in found, f"{rule['alert']}: no section #{anchor} in docs/runbooks.md"
        assert anchor == slug(rule["alert"])


def test_every_section_says_what_it_means_how_to_confirm_and_what_to_do():
    for anchor, body in sections().items():
        for part in ("**Means.**", "**Confirm.**", "**Act.**"):
            assert part in body, (anchor, part)
        assert re.search(r"\{[^}]*(job|queue)=", body) or "rq_" in body, (anchor, "no PromQL")
        assert "redis-cli" in body or "curl" in body, (anchor, "no command to confirm it by hand")


def test_every_alert_in_the_config_has_a_section():
    config = rule_generator().load_config()
    assert {slug(name) for name in config["alerts"]} <= set(sections())


def test_every_alert_links_to_a_dashboard():
    schedule_alerts = rule_generator().SCHEDULE_ALERTS
    slo_alerts = set(rule_generator().SLO_ALERTS.values())  # the burn-rate alerts: RQ / Service levels
    assert set(schedule_alerts) | slo_alerts <= {rule["alert"] for rule in alerts()}
    for rule in alerts():
        link = rule["annotations"]["dashboard_url"]
        board = "rq-queue" if "$labels.queue" in rule["annotations"]["description"] else "rq-overview"
        if rule["alert"] in schedule_alerts:
            board = "rq-schedules"
        if rule["alert"] in slo_alerts:
            board = "rq-slo"
        # Wherever the alert names a queue, its link opens that queue (RQ / Schedules' too).
        queue_set = "var-queue={{ $labels.queue }}" in link
        assert queue_set == ("$labels.queue" in rule["annotations"]["description"]), rule["alert"]
        assert f"/d/{board}?" in link and "var-instance={{ $labels.instance }}" in link, rule["alert"]
        assert (ROOT / "dashboards" / f"{board}.json").is_file()


def test_the_runbook_base_is_the_projects_runbooks_url():
    # (tomllib is 3.11+; the unit tests also run on 3.10: scripts/compat.sh)
    section = (ROOT / "pyproject.toml").read_text().split("[project.urls]\n", 1)[1].split("\n[", 1)[0]
    urls = dict(re.findall(r'^(\w+) = "([^"]+)"$', section, re.M))
    assert rule_generator().load_config()["runbook_url"] == urls["Runbooks"]
    assert urls["Runbooks"] == urls["Homepage"] + "/blob/main/docs/runbooks.md"
