"""The environment as settings sources besides pydantic-settings' own (settings.py orders them).

- ``LegacyEnv``: rq-exporter 3.x's variables, which do not follow our RQ_EXPORTER_ prefix, below our
  own in priority (its flags are CLI aliases of the settings' fields);
- ``EmptyRefused``: our variables set to "" where that must be refused rather than unset.
"""

from __future__ import annotations

import os

from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

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
        if "redis_password_file" in found:  # rq-exporter 3.x read the file, whatever RQ_REDIS_PASS said
            found.pop("redis_password", None)
        return found


class EmptyRefused(PydanticBaseSettingsSource):
    """Our variables of ``fields`` set to "", which the environment's source leaves out as it does
    every empty one: handed on as "" for the settings to refuse (a web config path left empty must
    not serve without its TLS and basic auth)."""

    def __init__(self, settings_cls, fields: tuple[str, ...]) -> None:
        super().__init__(settings_cls)
        self.fields = fields

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[object, str, bool]:
        prefix = self.settings_cls.model_config.get("env_prefix", "")
        return os.environ.get(prefix + field_name.upper()), field_name, False

    def __call__(self) -> dict[str, object]:
        found: dict[str, object] = {}
        for name in self.fields:
            value, key, _ = self.get_field_value(self.settings_cls.model_fields[name], name)
            if value == "":
                found[key] = value
        return found
