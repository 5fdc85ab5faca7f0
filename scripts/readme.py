"""Regenerates the README's metric and settings tables from the code (`make docs`).

tests/test_readme.py fails when the committed README differs from what this writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rq_exporter_ng import usage
from rq_exporter_ng.families.catalogue import markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"


SECTIONS = {"metrics": markdown_table, "settings": usage.markdown_table}


def render(text: str) -> str:
    for name, make in SECTIONS.items():
        start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
        before, found, rest = text.partition(start)
        _, found_end, after = rest.partition(end)
        if not (found and found_end):
            raise SystemExit(f"README.md has no {start.strip()} ... {end} block")
        text = before + start + make() + "\n" + end + after
    return text


if __name__ == "__main__":
    current = README.read_text()
    wanted = render(current)
    if "--check" in sys.argv:
        sys.exit(0 if wanted == current else "README.md tables are stale: run `make docs`")
    README.write_text(wanted)
