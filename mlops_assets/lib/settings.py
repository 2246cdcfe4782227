"""Numbers read from the environment, with one error a user can act on."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def env_number(name: str, default: Any, kind: type = float, environ: Mapping[str, str] | None = None) -> Any:
    """``kind(environ[name])`` when set (it must be positive), else ``default``; a ValueError names the variable."""
    raw = (os.environ if environ is None else environ).get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number ({kind.__name__}): unset it or give one") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be positive")
    return value
