"""The allow-list of Redis targets for ``/probe?target=NAME``: a YAML file of named targets.

::

    targets:
      orders:
        redis_url: rediss://redis-orders:6380/0
        redis_username: rq-exporter
        redis_password_file: /run/secrets/orders
        redis_tls_ca_file: /etc/ssl/redis-ca.crt
      billing:
        sentinel_host: sentinel-0:26379,sentinel-1:26379
        sentinel_master: billing
        key_prefix: billing

Each entry takes the exporter's own Redis and reading settings (the names of the settings
table, snake_case); what an entry leaves out comes from the exporter's command line, except
credentials and TLS files, which a target only has when it names them. Only
names listed here can be probed, so the exporter never connects where a URL parameter says:
it is not an open proxy, and credentials stay in the file (or the files it names).
"""

from __future__ import annotations

import re
from pathlib import Path

from rq_exporter_ng import loading, value_checks, yamlfile
from rq_exporter_ng import settings as settings_module
from rq_exporter_ng.settings import Settings

# The settings a target may set: where Redis is and how to read it. Listening address,
# logging and the web config belong to the process, not to a target.
TARGET_FIELDS = frozenset(
    name for name in Settings.model_fields if name.startswith(("redis_", "sentinel_"))
) | {"key_prefix", "queue_include", "queue_exclude", "per_worker_metrics"}
LOCATION_FIELDS = frozenset({"redis_url", "redis_host", "sentinel_host", "sentinel_master"})
WHERE_FIELDS = LOCATION_FIELDS - {"sentinel_master"}  # one of them says where Redis is (a master name alone does not)
# Never sent to a target that did not ask for them: the command line's password is for the
# command line's Redis, not for every server in the file; so are its TLS files and TLS leniency.
CREDENTIAL_FIELDS = frozenset({"redis_username", "redis_password", "redis_password_file", "redis_tls_ca_file",
                               "redis_tls_cert_file", "redis_tls_key_file", "redis_tls_relax_x509_strict",
                               "sentinel_password"})
NAME = re.compile(r"^[A-Za-z0-9_.:@/-]{1,200}$")


class TargetsError(ValueError):
    """The targets file is wrong; the message is one line naming the target and key."""


def load(path: Path, base: Settings) -> dict[str, Settings]:
    return parse(yamlfile.read(path, TargetsError), base, path.parent)


def parse(raw: object, base: Settings, directory: Path) -> dict[str, Settings]:
    if not isinstance(raw, dict) or set(raw) != {"targets"} or not isinstance(raw["targets"], dict):
        raise TargetsError("must be a mapping with one key, targets: {NAME: {setting: value}}")
    if not raw["targets"]:
        raise TargetsError("targets: lists no target")
    # Only the Redis/reading settings a target may set; the rest is the process's own. Where
    # Redis is and how to log in never come from the command line or the environment.
    own_only = LOCATION_FIELDS | CREDENTIAL_FIELDS
    inherited = {name: Settings.model_fields[name].default if name in own_only else getattr(base, name)
                 for name in TARGET_FIELDS}
    found: dict[str, Settings] = {}
    for name, entry in raw["targets"].items():
        if not isinstance(name, str):  # 1 and "1", or null and "None", would be one name
            raise TargetsError(f"targets.{name}: quote a name YAML reads as a number, true/false or null")
        if not NAME.match(name):
            raise TargetsError(f"targets.{name}: a target name is letters, digits and _ . : @ / - only")
        entry = entry or {}
        if not isinstance(entry, dict):
            raise TargetsError(f"targets.{name}: must be a mapping of settings")
        for key in entry:
            if key not in TARGET_FIELDS:
                known = ", ".join(sorted(TARGET_FIELDS))
                raise TargetsError(f"targets.{name}.{key}: not a target setting (one of {known})")
        if not {key for key in WHERE_FIELDS & set(entry) if entry[key] not in (None, "")}:
            raise TargetsError(f"targets.{name}: needs redis_url, redis_host or sentinel_host")
        for key, value in entry.items():
            # YAML's true is no port or database: pydantic would read it as 1.
            if isinstance(value, bool) and not value_checks.is_switch(Settings.model_fields[key].annotation):
                raise TargetsError(f"targets.{name}.{key}: {value} is not a {key.removeprefix('redis_')}")
        own = {key: _resolve(key, value, directory) for key, value in entry.items()}
        values = {**inherited, **own}
        try:
            found[name] = loading.validate(values)
        except settings_module.InvalidSettings as error:
            # In this file settings are keys, not flags.
            field = f"{error.field}: " if error.field else ""
            raise TargetsError(f"targets.{name}: {field}{error.message}") from None
    return found


def _resolve(key: str, value: object, directory: Path) -> object:
    # File settings are relative to the targets file, like the web config's paths.
    if key.endswith("_file") and isinstance(value, str) and value:
        return str(directory / Path(value).expanduser())
    return value
