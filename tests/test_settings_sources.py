"""Settings' sources: every option as a flag and a variable, rq-exporter 3.x's and RQ's names, which
one wins, empty ones, --help and --version.

Parsing is checked in-process through loading.load (the function the command calls); --help,
--version and the log format on the real `python -m rq_exporter_ng`. The values refused one by one
are in test_settings_values.py; files and settings given together in
test_settings_files_and_combinations.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from settings_fixtures import SECRET, certs_fixture, clean_env, files_fixture  # noqa: F401  (pytest fixtures)

from devkit import run, stop_process
from rq_exporter_ng.connection import password, redis_url, sentinels
from rq_exporter_ng.env_sources import LEGACY_ENV
from rq_exporter_ng.loading import load
from rq_exporter_ng.settings import ENV_PREFIX, Settings
from support import ROOT, main_in_process, run_exporter

TLS_URL = ["--redis-url", "rediss://h:6380/0"]


def sample_values(files: dict[str, str]) -> dict[str, tuple[str, object, list[str]]]:
    """field -> (value as typed by a user, value expected in Settings, companion flags it needs)."""
    return {
        "host": ("127.0.0.2", "127.0.0.2", []),
        "port": ("1234", 1234, []),
        "web_config_file": (files["ca"], files["ca"], []),
        "targets_file": (files["cert"], files["cert"], []),
        "redis_url": ("rediss://h:7000/3", "rediss://h:7000/3", []),
        "redis_host": ("redis.internal", "redis.internal", []),
        "redis_port": ("6380", 6380, []),
        "redis_db": ("5", 5, []),
        "redis_username": ("exporter", "exporter", []),
        "redis_password": (SECRET, SECRET, []),
        "redis_password_file": (files["password"], files["password"], []),
        "sentinel_host": ("s1,s2:26400", "s1,s2:26400", ["--sentinel-master", "mymaster"]),
        "sentinel_port": ("26380", 26380, []),
        "sentinel_master": ("mymaster", "mymaster", []),
        "sentinel_password": ("sentinel-pw", "sentinel-pw", []),
        "redis_tls_ca_file": (files["ca"], files["ca"], TLS_URL),
        "redis_tls_cert_file": (files["cert"], files["cert"], ["--redis-tls-key-file", files["key"], *TLS_URL]),
        "redis_tls_key_file": (files["key"], files["key"], ["--redis-tls-cert-file", files["cert"], *TLS_URL]),
        "redis_tls_relax_x509_strict": ("true", True, ["--redis-url", "rediss://h:6380/0"]),
        "redis_connect_timeout": ("0.25", 0.25, []),
        "redis_read_timeout": ("1.5", 1.5, []),
        "key_prefix": ("custom", "custom", []),
        "queue_include": ("high*,default", ("high*", "default"), []),
        "queue_exclude": ("tmp-*", ("tmp-*",), []),
        "per_worker_metrics": ("false", False, []),
        "shard": (" 1/3", "1/3", []),
        "shard_globals": ("true", True, []),
        "worker_class": ("app.Worker", "app.Worker", []),
        "queue_class": ("app.Queue", "app.Queue", []),
        "log_level": ("DEBUG", "DEBUG", []),
        "log_format": ("json", "json", []),
        "log_datefmt": ("%H:%M:%S", "%H:%M:%S", []),
        "job_timing": ("false", False, []),
        "timing_buckets": ("0.5,5,50", (0.5, 5.0, 50.0), []),
        "timing_max_jobs_per_scrape": ("50", 50, []),
        "timing_ttls": ("60,3600", (60, 3600), []),
        "timing_discovery_per_scrape": ("7", 7, []),
        "timing_clock_slack": ("3", 3, []),
        "timing_func_label": ("true", True, []),
        "timing_func_limit": ("5", 5, []),
        "exception_label_limit": ("7", 7, []),
        "gone_queue_seconds": ("0", 0, []),
    }


# Boolean flags are switched with --name / --no-name rather than given a value.
BOOLEAN_ARGS = {
    "per_worker_metrics": ["--no-per-worker-metrics"],
    "shard_globals": ["--shard-globals"],
    "job_timing": ["--no-job-timing"],
    "timing_func_label": ["--timing-func-label"],
    "redis_tls_relax_x509_strict": ["--redis-tls-relax-x509-strict"],
}


def plain(value: object) -> object:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    return value


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def test_every_setting_has_a_sample_here(files):
    # A new setting must be added to the samples above, so the tests below cover it too.
    assert set(sample_values(files)) == set(Settings.model_fields)


def test_every_setting_is_a_flag(files):
    for name, (typed, expected, companions) in sample_values(files).items():
        if name in BOOLEAN_ARGS:
            args = BOOLEAN_ARGS[name]
        else:
            args = [flag(name), typed]
        settings = load(args + companions)
        assert plain(getattr(settings, name)) == expected, name


def test_every_setting_is_an_env_variable(files, monkeypatch):
    for name, (typed, expected, companions) in sample_values(files).items():
        with monkeypatch.context() as m:
            m.setenv(ENV_PREFIX + name.upper(), typed)
            settings = load(companions)
        assert plain(getattr(settings, name)) == expected, name


def test_defaults_match_rq_exporter_3():
    settings = load([])
    assert (settings.host, settings.port) == ("0.0.0.0", 9726)
    assert redis_url(settings) == "redis://localhost:6379/0"
    assert settings.key_prefix == "rq"
    assert settings.per_worker_metrics is True
    # connect + 3 round trips must answer inside Prometheus' default 10 s scrape timeout
    assert settings.redis_connect_timeout + 3 * settings.redis_read_timeout < 10


@pytest.mark.parametrize(
    ("args", "name", "expected"),
    [
        (["-p", "9100"], "port", 9100),
        (["--host", "::1"], "host", "::1"),
        (["--redis-url", "redis://x:1/2"], "redis_url", "redis://x:1/2"),
        (["--redis-pass", SECRET], "redis_password", SECRET),
        (["--redis-host", "h", "--redis-port", "7", "--redis-db", "4"], redis_url, "redis://h:7/4"),
        (["--sentinel-host", "a,b:9", "--sentinel-port", "7", "--sentinel-master", "m"], sentinels,
         [("a", 7), ("b", 9)]),
    ],
)
def test_rq_exporter_3_flags(args, name, expected):
    settings = load(args)
    value = name(settings) if callable(name) else getattr(settings, name)
    assert plain(value) == expected


def test_rq_exporter_3_password_file_flag(files):
    assert password(load(["--redis-pass-file", files["password"]])) == SECRET


@pytest.mark.parametrize(
    ("env", "check"),
    [
        ({"RQ_REDIS_URL": "redis://legacy:1/2"}, lambda s: redis_url(s) == "redis://legacy:1/2"),
        ({"RQ_REDIS_HOST": "lh", "RQ_REDIS_PORT": "6390", "RQ_REDIS_DB": "3"},
         lambda s: redis_url(s) == "redis://lh:6390/3"),
        ({"RQ_REDIS_PASS": SECRET}, lambda s: password(s) == SECRET),
        ({"RQ_SENTINEL_HOST": "s1,s2:1", "RQ_SENTINEL_PORT": "26390", "RQ_SENTINEL_MASTER": "mm"},
         lambda s: sentinels(s) == [("s1", 26390), ("s2", 1)] and s.sentinel_master == "mm"),
        ({"RQ_EXPORTER_HOST": "10.0.0.1", "RQ_EXPORTER_PORT": "9999"},
         lambda s: (s.host, s.port) == ("10.0.0.1", 9999)),
        ({"RQ_KEY_PREFIX": "custom"}, lambda s: s.key_prefix == "custom"),
        ({"RQ_EXPORTER_LOG_LEVEL": "warning"}, lambda s: s.log_level == "WARNING"),
    ],
)
def test_rq_exporter_3_and_rq_3_env_variables(env, check, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert check(load([]))


def test_rq_redis_pass_file_env(files, monkeypatch):
    monkeypatch.setenv("RQ_REDIS_PASS_FILE", files["password"])
    assert password(load([])) == SECRET  # trailing newline stripped


def test_every_legacy_env_name_is_read(monkeypatch):
    for name, env in LEGACY_ENV.items():
        if name in ("redis_password_file", "sentinel_host"):
            continue  # covered above: they need a real file / a master name
        typed = {"redis_port": "6390", "redis_db": "3", "sentinel_port": "26390",
                 "redis_url": "redis://legacy/0"}.get(name, "legacyvalue")
        with monkeypatch.context() as m:
            m.setenv(env, typed)
            value = plain(getattr(load([]), name))
        assert str(value) == typed, env


def test_flag_beats_our_env_which_beats_legacy_env(monkeypatch):
    monkeypatch.setenv("RQ_REDIS_URL", "redis://legacy/0")
    assert load([]).redis_url == "redis://legacy/0"
    monkeypatch.setenv("RQ_EXPORTER_REDIS_URL", "redis://ours/0")
    assert load([]).redis_url == "redis://ours/0"
    assert load(["--redis-url", "redis://flag/0"]).redis_url == "redis://flag/0"
    monkeypatch.setenv("RQ_EXPORTER_PORT", "1111")
    assert load(["-p", "2222"]).port == 2222
    monkeypatch.setenv("RQ_EXPORTER_PER_WORKER_METRICS", "false")
    assert load(["--per-worker-metrics"]).per_worker_metrics is True


def test_bare_alias_names_are_not_read_from_the_environment(monkeypatch):
    # The -p alias must not turn $P or $PORT (set by many platforms) into our port.
    monkeypatch.setenv("P", "1")
    monkeypatch.setenv("PORT", "2")
    monkeypatch.setenv("REDIS_PASS", SECRET)
    settings = load([])
    assert settings.port == 9726 and password(settings) is None


def test_help_exits_0_and_documents_every_flag_and_variable():
    result = run_exporter("--help", env={"RQ_EXPORTER_REDIS_PASSWORD": SECRET,
                                          "RQ_REDIS_URL": f"redis://:{SECRET}@h/0"})
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    help_text = " ".join(result.stdout.split())  # argparse wraps lines
    for name in Settings.model_fields:
        assert flag(name) in help_text, name
        assert ENV_PREFIX + name.upper() in help_text, name
        if name in LEGACY_ENV:
            assert LEGACY_ENV[name] in help_text, name
    for legacy_flag in ("-p", "--redis-pass", "--redis-pass-file", "--no-per-worker-metrics"):
        assert legacy_flag in help_text


def test_every_switch_is_shown_and_read_as_a_flag_and_its_no_form():
    """``--help`` and the README show each on/off setting as ``--x`` / ``--no-x`` (an unset bool,
    ``--shard-globals``, included), and both forms are what the parser reads."""
    from rq_exporter_ng.usage import options
    from rq_exporter_ng.value_checks import is_switch

    switches = [o for o in options() if o.boolean]
    assert {o.field for o in switches} >= {"job_timing", "shard_globals"}
    lines = help_text_lines()
    for option in switches:
        on, off = option.flags[0], "--no-" + option.flags[0][2:]
        assert off in option.flags
        assert any(line.strip().startswith(f"{on}, {off}") for line in lines), option.field
        assert f"{on} VALUE" not in " ".join(lines)
    for field in ("job_timing", "shard_globals", "per_worker_metrics"):  # ones that need no other setting
        assert getattr(load([f"--{field.replace('_', '-')}"]), field) is True
        assert getattr(load([f"--no-{field.replace('_', '-')}"]), field) is False
    assert not is_switch(int) and not is_switch(str | None) and is_switch(bool | None)


def help_text_lines() -> list[str]:
    from rq_exporter_ng.usage import help_text

    return help_text().splitlines()


def test_the_installed_console_script_exists():
    script = Path(sys.executable).parent / "rq-exporter"
    assert script.exists()
    result = run([str(script), "--help"], capture_output=True, text=True, idle=20)
    assert result.returncode == 0 and "--redis-url" in result.stdout


def test_rq_exporter_3_log_format_string_and_datefmt():
    # rq-exporter 3.x took a Python logging format string in RQ_EXPORTER_LOG_FORMAT / --log-format.
    env = {"RQ_EXPORTER_LOG_FORMAT": "[%(asctime)s] [%(name)s] [%(levelname)s]: %(message)s",
           "RQ_EXPORTER_LOG_DATEFMT": "%Y/%m/%d"}
    process = subprocess.Popen([sys.executable, "-m", "rq_exporter_ng", "--host", "127.0.0.1", "--port", "0",
                                "--redis-url", "redis://127.0.0.1:1/0"],
                               cwd=ROOT, env={**os.environ, **env}, stderr=subprocess.PIPE, text=True)
    try:
        first = process.stderr.readline()
    finally:
        stop_process(process, 10)
    assert first.startswith("[") and "] [rq_exporter] [INFO]: rq-exporter " in first, first
    assert first[1:5].isdigit() and first[5] == "/", first


@pytest.mark.parametrize("flag_name", ["-v", "--version"])
def test_rq_exporter_3_version_flag(flag_name):
    from rq_exporter_ng import __version__

    result = run_exporter(flag_name)
    assert result.returncode == 0 and result.stdout.strip() == f"rq-exporter v{__version__}"
    for args in (["--port", "19999", flag_name], [flag_name, flag_name]):  # anywhere, as --help
        result = main_in_process(*args)
        assert result.returncode == 0 and result.stdout.strip() == f"rq-exporter v{__version__}", args


@pytest.mark.parametrize("name", ["RQ_EXPORTER_SENTINEL_HOST", "RQ_EXPORTER_REDIS_TLS_CA_FILE", "RQ_EXPORTER_REDIS_URL",
                                  "RQ_EXPORTER_REDIS_PASSWORD_FILE", "RQ_EXPORTER_QUEUE_INCLUDE", "RQ_EXPORTER_PORT",
                                  "RQ_EXPORTER_SHARD", "RQ_SENTINEL_HOST"])
def test_a_variable_set_empty_is_unset(name, monkeypatch):
    """Docker's `-e X=` and a Helm value left empty give "": the default, as rq-exporter 3.x read it
    (a file setting of "" used to be the directory ".", an empty Sentinel list an error)."""
    monkeypatch.setenv(name, "")
    assert load([]) == load_defaults(monkeypatch, name)


def load_defaults(monkeypatch, name: str) -> Settings:
    monkeypatch.delenv(name)
    return load([])


@pytest.mark.parametrize("flag", ["--sentinel-host", "--redis-tls-ca-file", "--redis-password-file", "--redis-url",
                                  "--log-datefmt"])
def test_a_flag_given_empty_is_unset(flag):
    assert load([f"{flag}="]) == load([])
