"""Settings: every option as a flag and a variable, rq-exporter 3.x's names, errors as one line + exit 2.

Parsing is checked in-process through loading.load (the function the command calls); what the
user sees on a wrong setting (stderr, exit code) is checked on the real `python -m rq_exporter_ng`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from devkit import run, stop_process
from rq_exporter_ng import settings as settings_module
from rq_exporter_ng.connection import password, redacted_target, redis_url, sentinels
from rq_exporter_ng.env_sources import LEGACY_ENV
from rq_exporter_ng.loading import load, validate
from rq_exporter_ng.settings import ENV_PREFIX, Settings
from support import ROOT, main_in_process, run_exporter

SECRET = "hunter2-s3cr3t"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No RQ_* variable from the caller's shell may leak into these tests."""
    for name in list(os.environ):
        if name.startswith("RQ_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    from certs import make_certs

    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def files(tmp_path, certs) -> dict[str, str]:
    """A password file and real TLS files (settings load them, as the connection will)."""
    password = tmp_path / "password"
    password.write_text(f"{SECRET}\n")
    return {"password": str(password), "ca": str(certs.ca), "cert": str(certs.client_cert),
            "key": str(certs.client_key)}


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


def test_an_empty_password_means_no_password(tmp_path, monkeypatch):
    """No AUTH at all: an empty file (a Secret's empty key) or variable is no password."""
    for content in ("", "\n", "\r\n"):
        (tmp_path / "pw").write_text(content)
        assert password(load(["--redis-password-file", str(tmp_path / "pw")])) is None
    monkeypatch.setenv("RQ_EXPORTER_REDIS_PASSWORD", "")
    assert password(load([])) is None


def test_a_password_file_missing_from_its_kubernetes_secret_means_no_password(tmp_path):
    """kubelet's layout of a Secret volume (files linked through ..data); a Secret without the key,
    mounted optional, has no file: no password, where a missing file elsewhere is an error."""
    (tmp_path / "..2026_12_04_10_00_00.1").mkdir()
    (tmp_path / "..data").symlink_to("..2026_12_04_10_00_00.1")
    assert password(load(["--redis-password-file", str(tmp_path / "password")])) is None
    with pytest.raises(settings_module.InvalidSettings, match="cannot read"):
        load(["--redis-password-file", str(tmp_path / "elsewhere" / "password")])


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


@pytest.mark.parametrize("text", [f"{SECRET}\r\n", f" {SECRET}\t\n", f"\n{SECRET}  "])
def test_whitespace_around_the_password_in_its_file_is_dropped(tmp_path, text):
    """As rq-exporter 3.x read the file (f.read().strip()): a file written with a stray space or a
    CRLF gives the password a 3.x exporter sent."""
    path = tmp_path / "password"
    path.write_text(text)
    assert password(load(["--redis-password-file", str(path)])) == SECRET


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


def test_derived_values():
    s = load(["--redis-host", "::1", "--queue-include", "high*, default", "--queue-exclude", "high-tmp*"])
    assert redis_url(s) == "redis://[::1]:6379/0"
    assert [q for q in ("high", "high-tmp1", "default", "low") if s.wants_queue(q)] == ["high", "default"]
    assert redacted_target(load(["--redis-url", "redis://u:pw@h:1/0"])) == "redis://u:***@h:1/0"
    assert redacted_target(load(["--redis-url", "unix:///run/redis.sock?db=2"])) == "unix:///run/redis.sock?db=2"
    assert redacted_target(load(["--sentinel-host", "a,b:2", "--sentinel-master", "m", "--redis-db", "1"])) \
        == "sentinel://a:26379,b:2/m/1"


# --- what the user sees: the real command ---------------------------------------------------------

INVALID = [
    # (argv, env, the flag the message must name)
    (["--port", "abc"], {}, "--port"),
    (["-p", "70000"], {}, "--port"),
    ([], {"RQ_EXPORTER_PORT": "-1"}, "--port"),
    ([], {"RQ_REDIS_PORT": "x"}, "--redis-port"),
    (["--redis-db", "-1"], {}, "--redis-db"),
    (["--redis-url", f"http://user:{SECRET}@h/0"], {}, "--redis-url"),
    (["--redis-url", f"redis://user:{SECRET}@h:notaport/0"], {}, "--redis-url"),
    (["--redis-url", f"redis://user:{SECRET}@[::1/0"], {}, "--redis-url"),
    ([], {"RQ_REDIS_URL": f"ftp://:{SECRET}@h"}, "--redis-url"),
    (["--redis-pass", SECRET, "--redis-pass-file", "/etc/hostname"], {}, "--redis-password"),
    (["--redis-password-file", "/nonexistent/pw"], {}, "--redis-password-file"),
    (["--sentinel-host", "s1"], {}, "--sentinel-master"),
    (["--redis-tls-cert-file", "/etc/hostname"], {}, "--redis-tls-key-file"),
    (["--redis-connect-timeout", "0"], {}, "--redis-connect-timeout"),
    (["--redis-read-timeout", "-2"], {}, "--redis-read-timeout"),
    (["--key-prefix", "a b"], {}, "--key-prefix"),
    (["--key-prefix", ""], {}, "--key-prefix"),
    (["--log-level", "chatty"], {}, "--log-level"),
    ([], {"RQ_EXPORTER_LOG_FORMAT": "xml"}, "--log-format"),
    ([], {"RQ_EXPORTER_PER_WORKER_METRICS": "maybe"}, "--per-worker-metrics"),
    (["--log-format", "plain"], {}, "--log-format"),
    ([], {"RQ_EXPORTER_LOG_FORMAT": "%(asctime)s %(levelname"}, "--log-format"),
    (["--no-such-flag"], {}, "--no-such-flag"),
    (["--port"], {}, "--port"),
    (["--exception-label-limit", "0"], {}, "--exception-label-limit"),
    (["--gone-queue-seconds", "-1"], {}, "--gone-queue-seconds"),
    (["--redis-tls-relax-x509-strict"], {}, "--redis-tls-relax-x509-strict"),  # no TLS to relax
    (["--host", "999.1.1.1"], {}, "--host"),
    ([], {"RQ_EXPORTER_HOST": "bad host"}, "--host"),
    (["--redis-host", "999.1.1.1"], {}, "--redis-host"),
    (["--redis-password-file", "/tmp"], {}, "--redis-password-file"),  # a directory passes os.access
    (["--redis-connect-timeout", "inf"], {}, "--redis-connect-timeout"),  # redis-py: OverflowError at connect
    ([], {"RQ_EXPORTER_REDIS_READ_TIMEOUT": "1e400"}, "--redis-read-timeout"),
    (["--log-format", "%(message)s %(bogus)s"], {}, "--log-format"),  # valid syntax, a KeyError at every line
    (["--log-format", "%(message)d"], {}, "--log-format"),
    (["--sentinel-host", ",,,", "--sentinel-master", "m"], {}, "--sentinel-host"),
    (["--sentinel-host", "s1:abc", "--sentinel-master", "m"], {}, "--sentinel-host"),
    ([], {"RQ_SENTINEL_HOST": "::1", "RQ_SENTINEL_MASTER": "m"}, "--sentinel-host"),  # IPv6 needs brackets
    (["--queue-include", ""], {}, "--queue-include"),  # would export no queue
    ([], {"RQ_EXPORTER_QUEUE_INCLUDE": ",,,"}, "--queue-include"),
    (["--redis-tls-ca-file", "/etc/hostname"], {}, "--redis-tls-ca-file"),  # redis://: no TLS to use it
    (["--redis-url", "rediss://h:6380/0", "--redis-tls-ca-file", "/etc/hostname"], {}, "--redis-tls-ca-file"),
    (["--job-timing", "false"], {}, "a switch takes no value: --job-timing or --no-job-timing"),
    (["--per-worker-metrics=no"], {}, "a switch takes no value: --per-worker-metrics or --no-per-worker-metrics"),
    (["--shard-globals", "maybe"], {}, "a switch takes no value: --shard-globals or --no-shard-globals"),
    (["--redis-url", "redis://h:1/0?socket_timeout=1e10"], {}, "socket_timeout: '1e10' must be at most 3600 seconds"),
    (["--redis-url", "rediss://h:1/0?ssl_ca_certs=/etc/hostname"], {}, "/etc/hostname holds no CA certificate"),
    (["--redis-url", "rediss://h:1/0?ssl_ca_certs=/tmp"], {}, "ssl_ca_certs: cannot read /tmp: not a file"),
]


@pytest.mark.parametrize(("args", "env", "named"), INVALID, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_invalid_setting_is_one_line_naming_it_and_exit_2(args, env, named):
    """The command's main, in this process (an interpreter a case costs ~0.5 s, four suites over; a
    start it does not refuse fails the case rather than serving for ever); the real command below runs
    a case of each kind of source."""
    result = main_in_process(*args, env={"RQ_REDIS_PASS": SECRET, **env})
    assert result.returncode == 2, result.stderr
    out, err = result.stdout, result.stderr
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert named in lines[0]
    assert out == ""
    assert SECRET not in err


@pytest.mark.parametrize(("args", "env", "named"), [
    (["-p", "70000"], {}, "--port"),
    ([], {"RQ_REDIS_PORT": "x"}, "--redis-port"),
    ([], {"RQ_EXPORTER_LOG_FORMAT": "%(asctime)s %(levelname"}, "--log-format"),
    # TEST-NET-1, an address this machine lacks: refused only when it listens, so here only
    (["--host", "192.0.2.1", "--port", "0"], {}, "--host"),
    (["--no-such-flag"], {}, "--no-such-flag"),
])
def test_the_real_command_says_an_invalid_setting_in_one_line_and_exits_2(args, env, named):
    result = run_exporter(*args, env={"RQ_REDIS_PASS": SECRET, **env}, timeout=10)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert result.stdout == ""
    assert SECRET not in result.stderr


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


@pytest.mark.parametrize(("args", "field", "message"), [
    (["--sentinel-host", "s1"], "sentinel_master", "required with --sentinel-host"),
    (["--timing-buckets", "1,1"], "timing_buckets", "bucket bounds must increase"),
    (["--timing-buckets", ""], "timing_buckets", "at least one bucket bound is needed"),
    (["--timing-buckets", "2,1"], "timing_buckets", "bucket bounds must increase"),
    (["--timing-buckets=-1,2"], "timing_buckets", "bucket bounds must be positive numbers"),
    (["--timing-buckets", "inf"], "timing_buckets", "bucket bounds must be positive numbers"),
    (["--timing-buckets", "x"], "timing_buckets", "valid number"),
    (["--timing-ttls", "0"], "timing_ttls", "TTLs are positive whole seconds"),
    (["--timing-ttls", "1.5"], "timing_ttls", "valid integer"),
])
def test_an_invalid_setting_carries_its_field(args, field, message):
    with pytest.raises(settings_module.InvalidSettings) as error:
        load(args)
    assert error.value.field == field
    assert message in error.value.message


def test_list_settings_are_typed_and_parsed_once():
    settings = load(["--timing-buckets", "0.5, 1,10", "--queue-include", "a*, b", "--timing-ttls", "60,3600"])
    assert settings.timing_buckets == (0.5, 1.0, 10.0)
    assert settings.queue_include == ("a*", "b") and settings.queue_exclude == ()
    assert settings.timing_ttls == (60, 3600)
    # From a targets file: lists as YAML lists or comma-separated strings.
    assert validate({"queue_include": ["a", "b,c"]}).queue_include == ("a", "b", "c")


def test_describe_error_never_shows_a_password_value():
    with pytest.raises(settings_module.InvalidSettings) as error:
        load(["--redis-password", SECRET, "--redis-password-file", "/nonexistent"])
    assert SECRET not in str(error.value)


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


@pytest.mark.parametrize("kind, named", [("fifo", "not a file"), ("latin-1", "not UTF-8 text")])
def test_a_password_file_that_is_no_text_file_is_one_line_and_exit_2(tmp_path, kind, named):
    """A FIFO would block the first scrape for ever; bytes that are no UTF-8 raised a traceback."""
    path = tmp_path / "password"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(b"caf\xe9\n")
    result = run_exporter("--redis-password-file", str(path), timeout=10)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "--redis-password-file" in lines[0] and named in lines[0], result.stderr


def test_a_tls_key_that_is_not_the_certificates_is_one_line_and_exit_2(certs):
    result = run_exporter("--redis-url", "rediss://h:6380/0", "--redis-tls-cert-file", str(certs.client_cert),
                          "--redis-tls-key-file", str(certs.server_key), timeout=10)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "--redis-tls-cert-file" in lines[0] and "KEY_VALUES_MISMATCH" in lines[0], \
        result.stderr


def test_the_redis_url_wins_and_port_or_db_alone_are_localhosts(monkeypatch):
    """As rq-exporter 3.x: RQ_REDIS_URL wins over every other Redis setting (Sentinel's too), and
    RQ_REDIS_PORT or RQ_REDIS_DB without RQ_REDIS_HOST mean localhost's (they were ignored)."""
    assert redis_url(load(["--redis-port", "6380"])) == "redis://localhost:6380/0"
    monkeypatch.setenv("RQ_REDIS_DB", "2")
    assert redis_url(load([])) == "redis://localhost:6379/2"
    both = load(["--redis-url", "redis://h:1/3", "--sentinel-host", "s1"])  # no master needed: unused
    assert both.sentinel_host is None and redis_url(both) == "redis://h:1/3"
    assert both.unused == ("sentinel_host",) and load([]).unused == ()


def test_sentinel_beside_the_url_is_said_unused_in_the_log():
    """k8s/deployment.yaml always sets RQ_EXPORTER_REDIS_URL: a --sentinel-host added to it is not used,
    and the log says so rather than reading the URL's Redis silently."""
    from support import Exporter

    exporter = Exporter("--sentinel-host", "s1", "--sentinel-master", "m",
                        env={"RQ_EXPORTER_REDIS_URL": "redis://127.0.0.1:1/0"})
    log = exporter.stop()
    assert "--sentinel-host/RQ_EXPORTER_SENTINEL_HOST/RQ_SENTINEL_HOST is not used: --redis-url" in log, log


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


@pytest.mark.parametrize("name", ["web_config_file", "targets_file"])
def test_an_empty_web_config_or_targets_path_is_refused(name, monkeypatch):
    """Not unset, as the other settings: a template's value left out would serve without the web
    config's TLS and basic auth (fail open), or without the targets."""
    flag, variable = settings_module.flag_names(name)[0], settings_module.env_names(name)[0]
    for args, env in (([f"{flag}="], {}), ([], {variable: ""})):
        result = main_in_process(*args, env=env)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == f"rq-exporter: invalid setting {flag} ({variable}): given empty: name the " \
                                        "file, or leave the setting out (got '')"


def test_a_trailing_comma_in_the_sentinel_list_is_skipped():
    """rq-exporter 3.x took `s1,s2,` (its Sentinel client went past the empty host)."""
    assert sentinels(load(["--sentinel-host", "s1, s2:1,", "--sentinel-master", "m"])) == [("s1", 26379), ("s2", 1)]
    with pytest.raises(settings_module.InvalidSettings, match="names no host"):
        load(["--sentinel-host", " , ", "--sentinel-master", "m"])


def test_rq_redis_pass_file_wins_over_rq_redis_pass(files, monkeypatch):
    """As in rq-exporter 3.x; our own flags or variables given both stay an error (one must go)."""
    monkeypatch.setenv("RQ_REDIS_PASS", "not-this-one")
    monkeypatch.setenv("RQ_REDIS_PASS_FILE", files["password"])
    assert password(load([])) == SECRET
    with pytest.raises(settings_module.InvalidSettings, match="not both"):
        load(["--redis-password", "x", "--redis-password-file", files["password"]])


def test_an_encrypted_tls_key_is_opened_with_the_urls_ssl_password_and_never_asks(tmp_path):
    """OpenSSL asks for a pass phrase on the terminal when a key is encrypted: the start-up check gives
    it the URL's ssl_password (redis-py does the same when it connects), or says what is missing."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-keyout", str(tmp_path / "k.pem"),
                    "-out", str(tmp_path / "c.pem"), "-days", "2", "-subj", "/CN=x", "-passout", "pass:pw"],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    url = f"rediss://h:6380/0?ssl_certfile={tmp_path / 'c.pem'}&ssl_keyfile={tmp_path / 'k.pem'}"
    assert load(["--redis-url", url + "&ssl_password=pw"]).redis_url
    for given, said in (("", "is encrypted and no pass phrase is given"),
                        ("&ssl_password=wrong", "is encrypted and the URL's ssl_password does not open it")):
        with pytest.raises(settings_module.InvalidSettings, match=said):
            load(["--redis-url", url + given])
    with pytest.raises(settings_module.InvalidSettings, match="is encrypted and no pass phrase"):
        load(["--sentinel-host", "s", "--sentinel-master", "m", "--redis-tls-cert-file", str(tmp_path / "c.pem"),
              "--redis-tls-key-file", str(tmp_path / "k.pem"), "--redis-tls-ca-file", str(tmp_path / "c.pem")])


@pytest.mark.redis
def test_rq_redis_db_alone_reads_that_database_of_localhost(redis_db):
    """The real exporter with RQ_REDIS_PORT and RQ_REDIS_DB only (no host): it reads database 3 of
    localhost's Redis, where before it read database 0 of port 6379."""
    from support import Exporter

    redis_db.client(db=3).sadd("rq:queues", "rq:queue:only-in-db-3")
    exporter = Exporter(env={"RQ_REDIS_PORT": str(redis_db.port), "RQ_REDIS_DB": "3"})
    try:
        samples = exporter.scrape()
        assert samples.value("rq_up") == 1
        assert samples.value("rq_jobs", queue="only-in-db-3", status="queued") == 0
    finally:
        exporter.stop()
