"""One error family for everything a user can cause.

A ``FlipflowError`` names the problem and, in ``fix``, what to do about it.
The CLI prints such an error as one line and exits with code 2; any other
exception is a bug in flipflow and keeps its traceback.

Subclasses that replaced a builtin error keep it as a second base (e.g.
``IRError(FlipflowError, ValueError)``) so that callers catching the builtin
still work.
"""

from __future__ import annotations


class FlipflowError(Exception):
    """A problem the user can fix: a bad file, option, model or environment.

    ``str(error)`` is the problem; ``error.fix`` is the remedy ("" when the
    problem statement already says it)."""

    def __init__(self, problem: str, fix: str = ""):
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem} (fix: {self.fix})" if self.fix else self.problem


class UsageError(FlipflowError, ValueError):
    """A command-line option or argument that does not fit the command."""


class OutputPathError(FlipflowError, OSError):
    """An output folder or file that cannot be created or written."""
