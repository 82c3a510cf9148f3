"""The one exception type for mistakes a user can fix; the CLI prints it in one line."""

from __future__ import annotations


class BlurcliError(Exception):
    """A user-facing failure (bad input, missing file, wrong device); exit code 2 = usage, 1 = failed work."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(BlurcliError):
    """A mistake in how the command was called (exit code 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)


def first_line(error: BaseException, limit: int = 160) -> str:
    """A library's error as a short single line for a user message: its first non-empty line, or
    its type's name when it says nothing."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:limit]
