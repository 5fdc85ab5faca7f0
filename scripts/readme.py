"""Regenerates the README's metric and settings tables from the code (`make docs`).

tests/test_readme.py fails when the committed README differs from what this writes.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from rq_exporter.catalogue import markdown_table
from rq_exporter.settings import ENV_PREFIX, LEGACY_ENV, Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def settings_table() -> str:
    rows = ["| flag | environment | default | description |", "|---|---|---|---|"]
    for name, info in Settings.model_fields.items():
        flags = ["--" + name.replace("_", "-")]
        alias = info.validation_alias
        for choice in getattr(alias, "choices", [])[1:]:
            flags.append(("-" if len(choice) == 1 else "--") + choice.replace("_", "-"))
        env = [ENV_PREFIX + name.upper()] + ([LEGACY_ENV[name]] if name in LEGACY_ENV else [])
        default = info.default
        shown = "" if default is None else f"`{default}`"
        description = (info.description or "").split(" [env:")[0].replace("|", "\\|")
        rows.append(f"| {', '.join(f'`{f}`' for f in flags)} | {', '.join(f'`{e}`' for e in env)} "
                    f"| {shown} | {description} |")
    return "\n".join(rows)


SECTIONS = {"metrics": markdown_table, "settings": settings_table}


def render(text: str) -> str:
    for name, make in SECTIONS.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README.md has no <!-- {name}:start --> ... <!-- {name}:end --> block")
        text = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), text)
    return text


if __name__ == "__main__":
    current = README.read_text()
    wanted = render(current)
    if "--check" in sys.argv:
        sys.exit(0 if wanted == current else "README.md tables are stale: run `make docs`")
    README.write_text(wanted)
