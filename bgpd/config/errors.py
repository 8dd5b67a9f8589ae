"""Configuration problems, reported all at once: each names the file, the key path and a plain reason."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ConfigIssue:
    file: str
    key: str  # a key path such as ``neighbor[2].asn``, or ``(syntax)`` / ``(file)``
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.reason}"


class ConfigError(Exception):
    """The configuration is unusable; ``issues`` holds every problem found, in file order."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))

    def __str__(self) -> str:
        return "\n".join(str(i) for i in self.issues)
