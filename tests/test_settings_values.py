"""Settings' values one by one: an invalid one is refused in one line naming its flag + exit 2, never
showing a password; lists parsed once, and the values derived from them.

The refusals are checked on the command's main in this process (support.main_in_process), a case of
each kind of source on the real `python -m rq_exporter_ng`; the parsing through loading.load (the
function the command calls).
"""

from __future__ import annotations

import pytest
from settings_fixtures import SECRET, clean_env  # noqa: F401  (pytest fixture)

from rq_exporter_ng import settings as settings_module
from rq_exporter_ng.connection import redacted_target, redis_url, sentinels
from rq_exporter_ng.loading import load, validate
from support import main_in_process, run_exporter


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
