"""Every option of the exporter, as one pydantic-settings model.

Each field is a CLI flag (``--field-name``) and an environment variable
(``RQ_EXPORTER_FIELD_NAME``).  rq-exporter 3.x's flags and variables keep working:
its flags are CLI aliases of the fields, its variables are read by ``LegacyEnv`` with
a lower priority than ours.
"""

from __future__ import annotations

import fnmatch
from functools import cached_property

from pydantic import AliasChoices, Field, PrivateAttr, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from rq_exporter_ng import redis_url, shards, value_checks
from rq_exporter_ng.env_sources import LEGACY_ENV, EmptyRefused, LegacyEnv
from rq_exporter_ng.setting_types import (
    Buckets,
    Included,
    KeyPrefix,
    ListenHost,
    LogFormat,
    LogLevel,
    MaybeFile,
    MaybeSecret,
    MaybeText,
    NamedFile,
    Patterns,
    RedisHost,
    RedisUrl,
    SentinelHosts,
    Shard,
    Ttls,
)

# 10 ms to 4 h in 13 buckets: 3 histograms x 16 series per queue, so thousands of queues stay affordable.
DEFAULT_BUCKETS = (0.01, 0.05, 0.25, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)

ENV_PREFIX = "RQ_EXPORTER_"
# The settings whose variable set to "" is refused rather than unset (setting_types.NamedFile).
REFUSED_EMPTY = ("web_config_file", "targets_file")
# Longer than any scrape can wait, and far below what a socket timeout can hold (~9.2e9 s, past
# which every connect fails with OverflowError).
MAX_TIMEOUT = redis_url.MAX_SECONDS

class InvalidSettings(Exception):
    """A setting is wrong. ``field`` names it (None when no one setting is to blame); ``str()`` is
    the one line the user sees, naming the flag and its variables."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(field, message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        if self.field is None:
            return self.message
        return f"invalid setting {flag_names(self.field)[0]} ({', '.join(env_names(self.field))}): {self.message}"


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
    # Settings given but not used, said once the logging is set up (cli.py): the URL wins over Sentinel.
    _unused: tuple[str, ...] = PrivateAttr(())

    # --- HTTP endpoint -----------------------------------------------------------
    host: ListenHost = Field("0.0.0.0", description="Address to listen on ('::' for all IPv6 and IPv4).")
    port: int = Field(
        9726, ge=0, le=65535, description="Port to listen on.", validation_alias=_cli("port", "p")
    )
    web_config_file: NamedFile = Field(
        None,
        description="Web config file (exporter-toolkit format): TLS certificate and key, client CA, "
        "basic_auth_users with bcrypt hashes.",
    )
    targets_file: NamedFile = Field(
        None,
        description="YAML file of named Redis targets served at /probe?target=NAME (the allow-list; "
        "per-target Redis settings and credentials).",
    )

    # --- Redis -------------------------------------------------------------------
    redis_url: RedisUrl = Field(
        None,
        description="Redis URL: redis://, rediss:// (TLS) or unix:// (default redis://localhost:6379/0, "
        "or built from --redis-host, --redis-port and --redis-db when one of them is set). Checked whole at start: "
        "host, port, /DB path and each query parameter redis-py takes.",
    )
    redis_host: RedisHost = Field(
        None, description="Redis host (localhost when unset), used when --redis-url is not set.")
    redis_port: int = Field(6379, ge=1, le=65535, description="Redis port, when --redis-url is not set.")
    redis_db: int = Field(0, ge=0, description="Redis database number, when --redis-url is not set.")
    redis_username: MaybeText = Field(None, description="Redis ACL user name.")
    redis_password: MaybeSecret = Field(
        None, description="Redis password.", validation_alias=_cli("redis_password", "redis_pass")
    )
    redis_password_file: MaybeFile = Field(
        None,
        description="File holding the Redis password (read once at start; whitespace around it ignored, "
        "as in rq-exporter 3.x).",
        validation_alias=_cli("redis_password_file", "redis_pass_file"),
    )
    sentinel_host: SentinelHosts = Field(
        None, description="Comma-separated Sentinel hosts ('host' or 'host:port'); enables Sentinel, unless "
        "--redis-url is set (the URL wins over every other Redis setting, as in rq-exporter 3.x)."
    )
    sentinel_port: int = Field(26379, ge=1, le=65535, description="Sentinel port for hosts given without one.")
    sentinel_master: MaybeText = Field(None, description="Sentinel master name (required with --sentinel-host).")
    sentinel_password: MaybeSecret = Field(
        None, description="Password of the Sentinels themselves (their requirepass); the master's is --redis-password."
    )
    redis_tls_ca_file: MaybeFile = Field(
        None,
        description="CA bundle to verify the Redis server (rediss://; with Sentinel, TLS files turn on TLS "
        "to the master). Loaded at start, as are the client certificate and key: a file that is not one stops it.",
    )
    redis_tls_cert_file: MaybeFile = Field(
        None, description="Client certificate for Redis TLS (loaded at start with the key: a mismatch stops it).")
    redis_tls_key_file: MaybeFile = Field(None, description="Client private key for Redis TLS.")
    redis_tls_relax_x509_strict: bool = Field(
        False,
        description="Accept Redis certificates that Python 3.13's strict X.509 checks refuse (a missing "
        "Authority Key Identifier, as some managed services' have); chain, expiry and host name are "
        "still verified.",
    )
    redis_connect_timeout: float = Field(
        2.0, gt=0, le=MAX_TIMEOUT,
        description="Seconds (at most 3600) to wait for a Redis connection before the scrape reports rq_up 0."
    )
    redis_read_timeout: float = Field(
        2.0,
        gt=0,
        le=MAX_TIMEOUT,
        description="Seconds (at most 3600) to wait for each Redis reply. A scrape makes 3 round trips: with "
        "the defaults connect + 3 x read is 8 s, under Prometheus' default 10 s scrape timeout (a scrape that opens "
        "job timing's second connection adds a connect: lower both with a slow Redis).",
    )

    # --- What to read --------------------------------------------------------------
    key_prefix: KeyPrefix = Field(
        "rq", min_length=1, description="RQ key prefix (RQ 3.0's RQ_KEY_PREFIX; 'rq' before that)."
    )
    queue_include: Included = Field(
        ("*",), description="Comma-separated glob patterns of queue names to export (default all; at least one)."
    )
    queue_exclude: Patterns = Field((), description="Comma-separated glob patterns of queue names to leave out.")
    per_worker_metrics: bool = Field(
        True,
        description="Export per-worker series (rq_workers, rq_workers_*_total, rq_worker_*). "
        "Turn off for large or fast-churning fleets: one series per worker name.",
    )
    shard: Shard = Field(
        None,
        description="'i/N' (0 <= i < N): this exporter is shard i of N over one Redis and reads only the "
        "queues whose CRC-32 of the UTF-8 name, mod N, is i (and that the queue patterns want). README: "
        "Running at scale.",
    )
    shard_globals: bool | None = Field(
        None,
        description="Export the series that are not per queue (workers, rq cron, rq-scheduler, the Redis "
        "server), which exactly one exporter over a Redis must do. Default: on, except under --shard with an "
        "index other than 0. Split by queue patterns instead: set it on one exporter and off on the others.",
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
    timing_buckets: Buckets = Field(
        DEFAULT_BUCKETS,
        description="Comma-separated upper bounds (seconds) of the rq_job_duration_seconds and "
        "rq_job_wait_seconds buckets.",
    )
    timing_max_jobs_per_scrape: int = Field(
        80_000,
        ge=0,
        description="Job hashes read per scrape to time newly ended jobs (the default times every job of "
        "5,000 jobs/s scraped every 15 s, ~75,000 a scrape, unless a scrape comes late); jobs past it are "
        "still counted but not timed (rq_exporter_jobs_not_timed_total).",
    )
    timing_ttls: Ttls = Field(
        (),
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
        100, ge=1, description="Distinct func label values (timing, and rq_scheduler_jobs' func); further functions "
        "are folded into 'other'."
    )
    gone_queue_seconds: int = Field(
        3600,
        ge=0,
        description="Seconds a queue may have no key in Redis before its job timing counters, histograms and "
        "exception classes are dropped (they restart from 0 if it comes back); 0 keeps them for ever.",
    )
    exception_label_limit: int = Field(
        50,
        ge=1,
        description="Distinct exception label values of rq_job_exceptions_total (with job timing); further "
        "exception classes are folded into 'other'.",
    )

    # --- Logging -----------------------------------------------------------------
    log_level: LogLevel = Field(
        "INFO", description="Log level."
    )
    log_format: LogFormat = Field(
        "text",
        description="Log format: text, json (one object a line), or a Python logging format string "
        "such as rq-exporter 3.x took ('[%(asctime)s] %(levelname)s: %(message)s').",
    )
    log_datefmt: MaybeText = Field(
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
        # A variable set to "" is unset (Docker's `-e X=`, a Helm value left empty), as rq-exporter 3.x
        # read it; on the command line, `--key-prefix ""` stays an error (not the config's
        # env_ignore_empty, which the CLI source would follow too).
        env = EnvSettingsSource(settings_cls, env_ignore_empty=True)
        return (init_settings, env, EmptyRefused(settings_cls, REFUSED_EMPTY), LegacyEnv(settings_cls))

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.redis_url and self.sentinel_host:
            # The URL wins over everything, as in rq-exporter 3.x (its Sentinel settings unused).
            self.sentinel_host = None
            self._unused = ("sentinel_host",)
        # Not a ValueError: pydantic would fold it into a ValidationError without the field's name.
        if self.sentinel_host and not self.sentinel_master:
            raise InvalidSettings("sentinel_master", "required with --sentinel-host")
        if bool(self.redis_tls_cert_file) != bool(self.redis_tls_key_file):
            raise InvalidSettings("redis_tls_key_file", "set together with --redis-tls-cert-file")
        if self.redis_password and self.redis_password_file:
            raise InvalidSettings("redis_password_file",
                                  "set either --redis-password or --redis-password-file, not both")
        if self.redis_tls_relax_x509_strict and not self._uses_tls():
            raise InvalidSettings("redis_tls_relax_x509_strict",
                                  "only with TLS: a rediss:// URL, or --redis-tls-* files with Sentinel")
        tls = {n: getattr(self, n) for n in ("redis_tls_ca_file", "redis_tls_cert_file", "redis_tls_key_file")}
        try:
            value_checks.readable_files({"redis_password_file": self.redis_password_file, **tls})
            if (tls["redis_tls_ca_file"] or tls["redis_tls_cert_file"]) and not self._uses_tls():
                name = "redis_tls_ca_file" if tls["redis_tls_ca_file"] else "redis_tls_cert_file"
                raise value_checks.BadFile(name, "only with TLS: a rediss:// URL, or Sentinel")
            value_checks.tls_files(*tls.values())
            if self.redis_url:
                value_checks.url_tls_files(self.redis_url)
        except value_checks.BadFile as error:
            raise InvalidSettings(error.field, error.message) from None
        return self

    # --- Derived values ----------------------------------------------------------
    @property
    def unused(self) -> tuple[str, ...]:
        """Settings given that another one makes unused (--sentinel-host beside --redis-url)."""
        return self._unused

    def _uses_tls(self) -> bool:
        if self.sentinel_host:
            return bool(self.redis_tls_ca_file or self.redis_tls_cert_file)
        return (self.redis_url or "").startswith("rediss://")

    def wants_queue(self, name: str) -> bool:
        if self.shard is not None:
            index, count = self.shard_index_count
            if shards.shard_of(name, count) != index:
                return False
        return self.wants_pattern(name)

    def wants_pattern(self, name: str) -> bool:
        """Whether the queue patterns want the queue, whichever shard owns it."""
        included, excluded = self.queue_include, self.queue_exclude
        if not excluded and "*" in included:  # the default: no pattern matching for each of 1000s of queues
            return True
        return any(fnmatch.fnmatchcase(name, p) for p in included) and not any(
            fnmatch.fnmatchcase(name, p) for p in excluded
        )

    @cached_property  # read for each queue of each scrape
    def shard_index_count(self) -> tuple[int, int]:
        """(i, N) of --shard; (0, 1) when not sharded."""
        return (0, 1) if self.shard is None else shards.parse(self.shard)

    @property
    def sharded(self) -> bool:
        """One of several exporters over one Redis: --shard, or --shard-globals set either way."""
        return self.shard is not None or self.shard_globals is not None

    @property
    def exports_globals(self) -> bool:
        """Whether this exporter exports the series of scope ``global`` (families/catalogue.py)."""
        if self.shard_globals is not None:
            return self.shard_globals
        return self.shard_index_count[0] == 0


def flag_names(field_name: str) -> list[str]:
    """The field's flags as typed: ``--redis-password``, then its aliases (``--redis-pass``, ``-p``)."""
    alias = Settings.model_fields[field_name].validation_alias
    names = [field_name, *getattr(alias, "choices", [])[1:]]
    return [("-" if len(n) == 1 else "--") + n.replace("_", "-") for n in names]


def env_names(field_name: str) -> list[str]:
    """Our variable, then rq-exporter 3.x's (or RQ's) where it has one."""
    return [ENV_PREFIX + field_name.upper()] + ([LEGACY_ENV[field_name]] if field_name in LEGACY_ENV else [])
