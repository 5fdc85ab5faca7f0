"""From what the user typed to Settings: the command line and the environment (``load``), or one
entry of a targets file (``validate``). A wrong setting becomes an InvalidSettings, whose ``str()``
is the one line the command prints before it exits with code 2."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_settings import CliApp, SettingsError

from rq_exporter_ng import redis_url, value_checks
from rq_exporter_ng.settings import InvalidSettings, Settings


def _describe(error: ValidationError) -> InvalidSettings:
    """The first wrong setting of a pydantic error, as the user can set it."""
    first = error.errors()[0]
    loc = [str(part) for part in first.get("loc", ())]
    message = first.get("msg", "invalid value").removeprefix("Value error, ")
    if not loc or loc[0] not in Settings.model_fields:
        return InvalidSettings(None, f"invalid settings: {message}")
    name = loc[0]
    value = first.get("input")
    if value is not None and "password" not in name and not isinstance(value, dict):
        message += f" (got {redis_url.redact(str(value)) if name == 'redis_url' else str(value)!r})"
    return InvalidSettings(name, message)


def validate(values: dict[str, Any]) -> Settings:
    """Settings from a mapping of field values (a targets file entry); raises InvalidSettings."""
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        raise _describe(error) from None


def load(argv: list[str] | None = None) -> Settings:
    """Settings from CLI arguments and the environment; raises InvalidSettings."""
    try:
        return CliApp.run(Settings, cli_args=argv if argv is not None else [])
    except ValidationError as error:
        raise _describe(error) from None
    except SettingsError as error:
        raise _switch_given_a_value(argv or []) or InvalidSettings(
            None, f"invalid arguments: {_one_line(str(error))}") from None


def _switch_given_a_value(argv: list[str]) -> InvalidSettings | None:
    """`--job-timing false` (argparse: "unrecognized arguments: false") said as what it is: a
    switch takes no value."""
    for flag, following in zip(argv, [*argv[1:], ""]):
        name, _, given = flag.partition("=")
        word = given or following
        field = name.removeprefix("--no-").removeprefix("--").replace("-", "_")
        if name.startswith("--") and field in Settings.model_fields and word and not word.startswith("-") \
                and value_checks.is_switch(Settings.model_fields[field].annotation):
            switch = "--" + field.replace("_", "-")
            return InvalidSettings(field, f"a switch takes no value: {switch} or --no-{switch[2:]}")
    return None


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "invalid"
