"""Exceptions whose ``str()`` is the one sentence a user sees.

Every user-facing failure in modelreg derives from :class:`ModelRegError`; the CLI
prints ``str(error)`` and exits with ``error.exit_code`` instead of a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class ModelRegError(Exception):
    """A failure caused by the user's input or environment, not by a bug."""

    exit_code = 2


@dataclass(frozen=True)
class Location:
    """Where in a file a problem sits; line and column are 1-based."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


def format_key_path(path: tuple[str | int, ...] | list[str | int]) -> str:
    """Render a key path as ``models."org/name".device_configs.4``.

    Keys that are not plain identifiers are quoted so the path can be read back.
    """
    out = []
    for key in path:
        text = str(key)
        if isinstance(key, str) and (not text or not all(c.isalnum() or c in "_-" for c in text)):
            text = '"' + text.replace('"', '\\"') + '"'
        out.append(text)
    return ".".join(out)


class ConfigError(ModelRegError):
    """One or more problems in a configuration file, each with its location.

    ``problems`` keeps every message so that a file with ten mistakes is fixed in
    one edit, not ten runs.
    """

    def __init__(self, problems: list[str]):
        if not problems:
            raise ValueError("ConfigError needs at least one problem")
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    @classmethod
    def at(
        cls,
        location: Location | str,
        message: str,
        key_path: tuple[str | int, ...] | list[str | int] = (),
    ) -> ConfigError:
        """Build a single-problem error: ``file:line:col: key.path: message``."""
        prefix = str(location)
        if key_path:
            prefix += ": " + format_key_path(key_path)
        return cls([f"{prefix}: {message}"])


class UsageError(ModelRegError):
    """A bad command-line flag or flag combination; the message names the flag."""


class ResolutionError(ModelRegError):
    """A model ID, path or config that cannot be turned into a HF config."""


class MatchError(ModelRegError):
    """No entry, or more than one equally specific entry, matches a model."""


class StrictModeError(ModelRegError):
    """A conflict or unsupported runtime under ``MODELREG_REQUIRE_KNOWN_CONFIG=1``."""
