"""careflow's error types: one per failure a user can act on.

Adapters map them to what their user sees: the API to an OperationOutcome, the CLI to one line.
"""

from __future__ import annotations


class CareflowError(Exception):
    """Base of every error careflow reports to a user (never shown as a traceback)."""


class ProgramError(CareflowError):
    """A programme file has problems; ``problems`` lists every one (file:line:col, key path, sentence)."""

    def __init__(self, problems: list["Problem"]) -> None:  # noqa: F821 - defined in programs.loader
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class UnknownProgram(CareflowError):
    """No programme with that id is loaded."""


class NotEligible(CareflowError):
    """The patient does not qualify for the programme: planning would give an empty plan."""


class PatientDataError(CareflowError):
    """The patient input (a Patient or a Bundle) cannot be read."""
