"""The README's panel-ready PromQL for job timing parses (promtool) and names real metrics."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from rq_exporter_ng.families.catalogue import BY_NAME
from support import ROOT, require_tool


def timing_queries() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Job timing\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```promql\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.promtool
def test_readme_timing_queries_parse_and_use_catalogued_metrics(tmp_path):
    promtool = require_tool("promtool")
    queries = timing_queries()
    assert len(queries) >= 5
    for query in queries:
        for name in re.findall(r"\b(rq_\w+?)(?:_bucket|_sum|_count)?\b[\[{(]", query):
            assert name in BY_NAME, name
    rules = {"groups": [{"name": "readme", "rules": [
        {"record": f"readme:query{i}", "expr": query} for i, query in enumerate(queries)]}]}
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
