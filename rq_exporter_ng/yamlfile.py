"""Reading the exporter's YAML files (web config, targets) with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read(path: Path, error: type[ValueError]) -> Any:
    """The parsed file; an unreadable or invalid file raises ``error`` with a one-line message."""
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise error(f"not valid YAML{f' at line {mark.line + 1}' if mark else ''}") from None
