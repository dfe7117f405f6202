"""`ConfigError` and `require`, the check that raises it.

Kept free of other imports, so that settings classes can live beside the code they configure
(the environments' own modules) while skillvet.config collects them, without an import cycle.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration that cannot be used, with the offending key in the message."""


def require(ok: bool, key: str, message: str) -> None:
    """Raise ConfigError("key: message") unless `ok`."""
    if not ok:
        raise ConfigError(f"{key}: {message}")
