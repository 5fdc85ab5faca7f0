"""Reading the exporter's YAML files (web config, targets) with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class _UniqueKeys(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping: YAML keeps the last, so a second
    target or user of the same name would silently replace the first."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor`: its keys are defaults, which the mapping's own may replace
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool, type(None))):
                continue  # a list or mapping as a key: SafeLoader says so below
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"{key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read(path: Path, error: type[ValueError]) -> Any:
    """The parsed file; an unreadable or invalid file raises ``error`` with a one-line message."""
    if path.exists() and not path.is_file():  # a directory fails to read; a FIFO would block
        raise error(f"cannot read {path}: not a file")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeys)
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise error(f"cannot read {path}: not UTF-8 text") from None
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise error(f"{exc.problem}{f' at line {mark.line + 1}' if mark else ''}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise error(f"not valid YAML{f' at line {mark.line + 1}' if mark else ''}") from None
