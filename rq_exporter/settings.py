"""Every option of the exporter, as one pydantic-settings model.

Each field is a CLI flag (``--field-name``) and an environment variable
(``RQ_EXPORTER_FIELD_NAME``).  rq-exporter 3.x's flags and variables keep working:
its flags are CLI aliases of the fields, its variables are read by ``LegacyEnv`` with
a lower priority than ours.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    CliApp,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from rq_exporter.timing import DEFAULT_BUCKETS, parse_buckets, parse_ttls

ENV_PREFIX = "RQ_EXPORTER_"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
REDIS_SCHEMES = ("redis", "rediss", "unix")

# rq-exporter 3.x environment variables that do not follow our RQ_EXPORTER_ prefix.
# (RQ_EXPORTER_HOST/PORT/LOG_LEVEL already match our own names.)  RQ_KEY_PREFIX is
# RQ 3.0's own variable, so an exporter sharing the application's environment follows it.
LEGACY_ENV = {
    "redis_url": "RQ_REDIS_URL",
    "redis_host": "RQ_REDIS_HOST",
    "redis_port": "RQ_REDIS_PORT",
    "redis_db": "RQ_REDIS_DB",
    "redis_password": "RQ_REDIS_PASS",
    "redis_password_file": "RQ_REDIS_PASS_FILE",
    "sentinel_host": "RQ_SENTINEL_HOST",
    "sentinel_port": "RQ_SENTINEL_PORT",
    "sentinel_master": "RQ_SENTINEL_MASTER",
    "worker_class": "RQ_WORKER_CLASS",
    "queue_class": "RQ_QUEUE_CLASS",
    "key_prefix": "RQ_KEY_PREFIX",
}


class InvalidSettings(Exception):
    """A setting is wrong; the message is one line naming it."""


def _cli(*names: str) -> AliasChoices:
    """CLI aliases of a field (the field's own name first, so it stays the main flag)."""
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        # Apply the prefix to aliases too, so the alias ``p`` never reads a bare $P or $PORT.
        env_prefix_target="all",
        case_sensitive=False,
        cli_prog_name="rq-exporter",
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_exit_on_error=False,
        cli_hide_none_type=True,
        populate_by_name=True,
        extra="ignore",
    )

    # --- HTTP endpoint -----------------------------------------------------------
    host: str = Field("0.0.0.0", description="Address to listen on ('::' for all IPv6 and IPv4).")
    port: int = Field(
        9726, ge=0, le=65535, description="Port to listen on.", validation_alias=_cli("port", "p")
    )
    web_config_file: Path | None = Field(
        None,
        description="Web config file (exporter-toolkit format): TLS certificate and key, client CA, "
        "basic_auth_users with bcrypt hashes.",
    )
    targets_file: Path | None = Field(
        None,
        description="YAML file of named Redis targets served at /probe?target=NAME (the allow-list; "
        "per-target Redis settings and credentials).",
    )

    # --- Redis -------------------------------------------------------------------
    redis_url: str | None = Field(
        None,
        description=f"Redis URL: redis://, rediss:// (TLS) or unix:// (default {DEFAULT_REDIS_URL}, "
        "or built from --redis-host when that is set).",
    )
    redis_host: str | None = Field(None, description="Redis host, used when --redis-url is not set.")
    redis_port: int = Field(6379, ge=1, le=65535, description="Redis port, with --redis-host.")
    redis_db: int = Field(0, ge=0, description="Redis database number, with --redis-host or Sentinel.")
    redis_username: str | None = Field(None, description="Redis ACL user name.")
    redis_password: SecretStr | None = Field(
        None, description="Redis password.", validation_alias=_cli("redis_password", "redis_pass")
    )
    redis_password_file: Path | None = Field(
        None,
        description="File holding the Redis password (read once at start; trailing newline ignored).",
        validation_alias=_cli("redis_password_file", "redis_pass_file"),
    )
    sentinel_host: str | None = Field(
        None, description="Comma-separated Sentinel hosts ('host' or 'host:port'); enables Sentinel."
    )
    sentinel_port: int = Field(26379, ge=1, le=65535, description="Sentinel port for hosts given without one.")
    sentinel_master: str | None = Field(None, description="Sentinel master name (required with --sentinel-host).")
    sentinel_password: SecretStr | None = Field(
        None, description="Password of the Sentinels themselves (their requirepass); the master's is --redis-password."
    )
    redis_tls_ca_file: Path | None = Field(
        None,
        description="CA bundle to verify the Redis server (rediss://; with Sentinel, TLS files turn on TLS "
        "to the master).",
    )
    redis_tls_cert_file: Path | None = Field(None, description="Client certificate for Redis TLS.")
    redis_tls_key_file: Path | None = Field(None, description="Client private key for Redis TLS.")
    redis_connect_timeout: float = Field(
        2.0, gt=0, description="Seconds to wait for a Redis connection before the scrape reports rq_up 0."
    )
    redis_read_timeout: float = Field(
        2.0,
        gt=0,
        description="Seconds to wait for each Redis reply. A scrape makes 3 round trips, so connect + "
        "3 x read stays under Prometheus' default 10 s scrape timeout.",
    )

    # --- What to read --------------------------------------------------------------
    key_prefix: str = Field(
        "rq", min_length=1, description="RQ key prefix (RQ 3.0's RQ_KEY_PREFIX; 'rq' before that)."
    )
    queue_include: str = Field(
        "*", description="Comma-separated glob patterns of queue names to export (default all)."
    )
    queue_exclude: str = Field("", description="Comma-separated glob patterns of queue names to leave out.")
    per_worker_metrics: bool = Field(
        True,
        description="Export per-worker series (rq_workers, rq_workers_*_total, rq_worker_*). "
        "Turn off for large or fast-churning fleets: one series per worker name.",
    )
    worker_class: str | None = Field(
        None, description="Ignored (rq-exporter 3.x compatibility): set --key-prefix instead."
    )
    queue_class: str | None = Field(
        None, description="Ignored (rq-exporter 3.x compatibility): set --key-prefix instead."
    )

    # --- Job timing ----------------------------------------------------------------
    job_timing: bool = Field(
        True,
        description="Export job run/wait time histograms and rq_jobs_finished_total/rq_jobs_failed_total "
        "(read incrementally from the finished and failed registries).",
    )
    timing_buckets: str = Field(
        ",".join(f"{bound:g}" for bound in DEFAULT_BUCKETS),
        description="Comma-separated upper bounds (seconds) of the rq_job_duration_seconds and "
        "rq_job_wait_seconds buckets.",
    )
    timing_max_jobs_per_scrape: int = Field(
        10_000,
        ge=0,
        description="Job hashes read per scrape to time newly ended jobs; jobs past it are still counted "
        "but not timed (rq_exporter_jobs_not_timed_total).",
    )
    timing_ttls: str = Field(
        "",
        description="Comma-separated result_ttl/failure_ttl values (seconds) your jobs use besides RQ's "
        "defaults (500, 31536000). Optional: others are discovered, declaring them saves the delay.",
    )
    timing_discovery_per_scrape: int = Field(
        100,
        ge=0,
        description="Job hashes read per scrape to discover TTLs not declared in --timing-ttls.",
    )
    timing_clock_slack: int = Field(
        10,
        ge=0,
        le=3600,
        description="Seconds by which RQ workers' clocks may differ from the exporter's (overlap of the "
        "registry windows read each scrape).",
    )
    timing_func_label: bool = Field(
        False,
        description="Add a func label (the job's function name, read without unpickling) to the timing "
        "histograms.",
    )
    timing_func_limit: int = Field(
        100, ge=1, description="Distinct func label values; further functions are folded into 'other'."
    )

    # --- Logging -----------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Log level."
    )
    log_format: str = Field(
        "text",
        description="Log format: text, json (one object a line), or a Python logging format string "
        "such as rq-exporter 3.x took ('[%(asctime)s] %(levelname)s: %(message)s').",
    )
    log_datefmt: str | None = Field(
        None, description="strftime format of %(asctime)s in text logs (rq-exporter 3.x's --log-datefmt)."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, LegacyEnv(settings_cls))

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, value: str) -> str:
        if value in ("text", "json"):
            return value
        try:
            logging.Formatter(value, validate=True)
            usable = "%(message)" in value
        except ValueError:
            usable = False
        if not usable:
            raise ValueError("text, json or a logging format string with %(message)s")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a port that is not a number in 0-65535
        except ValueError as error:
            # urllib's messages never quote the URL, so no password leaks through them.
            raise ValueError(f"not a URL: {error}") from None
        if parts.scheme not in REDIS_SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(s + '://' for s in REDIS_SCHEMES)}")
        return value

    @field_validator("key_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        # The same rule RQ 3.0 applies to RQ_KEY_PREFIX.
        if not all(c.isalnum() or c in "_.:{}-" for c in value):
            raise ValueError("only letters, digits and _ . : - { } are allowed")
        return value

    @field_validator("timing_buckets")
    @classmethod
    def _check_buckets(cls, value: str) -> str:
        parse_buckets(value)
        return value

    @field_validator("timing_ttls")
    @classmethod
    def _check_ttls(cls, value: str) -> str:
        parse_ttls(value)
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.sentinel_host and not self.sentinel_master:
            raise ValueError("sentinel_master: required with --sentinel-host")
        if bool(self.redis_tls_cert_file) != bool(self.redis_tls_key_file):
            raise ValueError("redis_tls_key_file: set together with --redis-tls-cert-file")
        if self.redis_password and self.redis_password_file:
            raise ValueError("redis_password_file: set either --redis-password or --redis-password-file, not both")
        for name in ("redis_password_file", "redis_tls_ca_file", "redis_tls_cert_file", "redis_tls_key_file"):
            path = getattr(self, name)
            if path is not None and not os.access(path, os.R_OK):
                raise ValueError(f"{name}: cannot read {path}")
        return self

    # --- Derived values ----------------------------------------------------------
    @property
    def included(self) -> tuple[str, ...]:
        return _patterns(self.queue_include)

    @property
    def excluded(self) -> tuple[str, ...]:
        return _patterns(self.queue_exclude)

    def wants_queue(self, name: str) -> bool:
        included, excluded = self.included, self.excluded
        if not excluded and "*" in included:  # the default: no pattern matching for each of 1000s of queues
            return True
        return any(fnmatch.fnmatchcase(name, p) for p in included) and not any(
            fnmatch.fnmatchcase(name, p) for p in excluded
        )

    def password(self) -> str | None:
        if self.redis_password is not None:
            return self.redis_password.get_secret_value()
        if self.redis_password_file is not None:
            return self.redis_password_file.read_text().rstrip("\r\n")
        return None

    def effective_redis_url(self) -> str:
        """The Redis URL to connect to (may hold a password: never log it, use ``redacted_target``)."""
        if self.redis_url:
            return self.redis_url
        if self.redis_host:
            host = f"[{self.redis_host}]" if ":" in self.redis_host else self.redis_host
            return f"redis://{host}:{self.redis_port}/{self.redis_db}"
        return DEFAULT_REDIS_URL

    def sentinels(self) -> list[tuple[str, int]]:
        result = []
        for item in filter(None, (part.strip() for part in (self.sentinel_host or "").split(","))):
            host, sep, port = item.rpartition(":")
            if sep and port.isdigit() and host:
                result.append((host.strip("[]"), int(port)))
            else:
                result.append((item, self.sentinel_port))
        return result

    def redacted_target(self) -> str:
        """Where the exporter reads from, safe for logs and the landing page."""
        if self.sentinel_host:
            hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels())
            return f"sentinel://{hosts}/{self.sentinel_master}/{self.redis_db}"
        return redact_url(self.effective_redis_url())


def redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        # Unparseable, so we cannot tell where a password would be: show none of it.
        return "<invalid URL>"
    if parts.password is None and parts.username is None:
        return url
    user = quote(parts.username or "", safe="")
    auth = f"{user}:***@" if parts.password is not None else f"{user}@"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = auth + host + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@lru_cache(maxsize=64)  # asked for each queue on each scrape
def _patterns(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


class LegacyEnv(PydanticBaseSettingsSource):
    """rq-exporter 3.x's environment variables, below our own in priority."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[object, str, bool]:
        name = LEGACY_ENV.get(field_name)
        value = os.environ.get(name) if name else None
        return value, field_name, False

    def __call__(self) -> dict[str, object]:
        found: dict[str, object] = {}
        for field_name in self.settings_cls.model_fields:
            value, key, _ = self.get_field_value(self.settings_cls.model_fields[field_name], field_name)
            if value not in (None, ""):
                found[key] = value
        return found


def _flag(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _env(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def describe_error(error: ValidationError) -> str:
    """One line naming the first wrong setting as the user can set it."""
    first = error.errors()[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "__root__"]
    message = first.get("msg", "invalid value").removeprefix("Value error, ")
    if loc and loc[0] in Settings.model_fields:
        name = loc[0]
    else:  # model-level checks put the field name first in their message
        name, _, rest = message.partition(": ")
        if name in Settings.model_fields:
            message = rest
        else:
            return f"invalid settings: {message}"
    value = first.get("input")
    shown = ""
    if value is not None and "password" not in name and not isinstance(value, dict):
        shown = f" (got {redact_url(str(value)) if name == 'redis_url' else str(value)!r})"
    return invalid_setting(name, message + shown)


def invalid_setting(name: str, message: str) -> str:
    """``invalid setting --flag (ENV, LEGACY_ENV): message``: the one line a wrong setting gets."""
    legacy = f", {LEGACY_ENV[name]}" if name in LEGACY_ENV else ""
    return f"invalid setting {_flag(name)} ({_env(name)}{legacy}): {message}"


def load(argv: list[str] | None = None) -> Settings:
    """Settings from CLI arguments and the environment; raises InvalidSettings."""
    try:
        return CliApp.run(Settings, cli_args=argv if argv is not None else [])
    except ValidationError as error:
        raise InvalidSettings(describe_error(error)) from None
    except SettingsError as error:
        raise InvalidSettings(f"invalid arguments: {_one_line(str(error))}") from None


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "invalid"


def _document_env_names() -> None:
    """--help names each option's environment variables next to its flag."""
    for name, info in Settings.model_fields.items():
        names = [_env(name)] + ([LEGACY_ENV[name]] if name in LEGACY_ENV else [])
        info.description = f"{info.description} [env: {', '.join(names)}]"


_document_env_names()
