"""The settings as a user reads them: ``--help`` and the README's settings table, from one list."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from rq_exporter_ng.settings import Settings, env_names, flag_names
from rq_exporter_ng.value_checks import is_switch


@dataclass(frozen=True)
class Option:
    field: str
    flags: list[str]
    envs: list[str]
    default: str  # as a user would type it; "" when unset
    description: str
    boolean: bool


def options() -> list[Option]:
    found = []
    for name, info in Settings.model_fields.items():
        default = info.default
        if isinstance(default, tuple):
            shown = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default)
        else:
            shown = "" if default is None else str(default)
        boolean = is_switch(info.annotation)
        flags = flag_names(name)
        if boolean:
            flags.insert(1, "--no-" + flags[0][2:])
        found.append(Option(name, flags, env_names(name), shown, info.description or "", boolean))
    return found


def help_text() -> str:
    lines = [
        "usage: rq-exporter [OPTION VALUE | --FLAG | --no-FLAG] ...",
        "",
        "Prometheus exporter for RQ (Redis Queue): reads RQ's state from Redis on every scrape.",
        "Every option is a flag and an environment variable; a flag wins over a variable.",
        "",
        "options:",
        "  -h, --help  show this help and exit",
        "  -v, --version  print the version and exit",
        "  --healthcheck [OPTION VALUE ...]  GET /healthz of the exporter these settings describe (or,",
        "      with none, of the one running as PID 1, the container's): exit 0 if it answers, 1 if not",
    ]
    for option in options():
        value = "" if option.boolean else " VALUE"
        lines.append("  " + ", ".join(f + value if not f.startswith("--no-") else f for f in option.flags))
        default = f" (default: {option.default})" if option.default else ""
        text = f"{option.description} [env: {', '.join(option.envs)}]{default}"
        lines += textwrap.wrap(text, width=96, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    rows = ["| flag | environment | default | description |", "|---|---|---|---|"]
    for option in options():
        flags = [f for f in option.flags if not f.startswith("--no-")]
        # An empty list says so (an empty code span renders as two backticks); an unset value is blank.
        empty_list = isinstance(Settings.model_fields[option.field].default, tuple)
        default = f"`{option.default}`" if option.default else "(empty list)" if empty_list else ""
        rows.append(f"| {', '.join(f'`{f}`' for f in flags)} | {', '.join(f'`{e}`' for e in option.envs)} "
                    f"| {default} | {option.description.replace('|', chr(92) + '|')} |")
    return "\n".join(rows)
