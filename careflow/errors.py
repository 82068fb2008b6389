"""careflow's error types: one per failure a user can act on.

Adapters map them to what their user sees: the API to an OperationOutcome, the CLI to one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the loader imports this module; the type is only named here
    from careflow.programs.positioned_yaml import Problem


class CareflowError(Exception):
    """Base of every error careflow reports to a user (never shown as a traceback)."""


class ProgramError(CareflowError):
    """A programme file has problems; ``problems`` lists every one (file:line:col, key path, sentence)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class RuleSetError(ProgramError):
    """A stratification rule file has problems, reported like a programme's (every one, file:line:col)."""


class MeasureSetError(ProgramError):
    """A quality-indicator file has problems, reported like a programme's (every one, file:line:col)."""


class UnknownProgram(CareflowError):
    """No programme with that id is loaded."""


class NotEligible(CareflowError):
    """The patient does not qualify for the programme: planning would give an empty plan."""


class PatientDataError(CareflowError):
    """The patient input (a Patient or a Bundle) cannot be read."""


# --- store errors (careflow.store): the API maps each to an OperationOutcome with ``http_status`` ---


class StoreError(CareflowError):
    """Base of the resource store's errors; ``http_status`` is what a REST adapter should answer."""

    http_status: int = 500
    code: str = "exception"  # OperationOutcome.issue.code
    expression: str | None = None  # FHIRPath-ish location / search parameter name the error is about


class NotFound(StoreError):
    """No resource (or version) with that type and id was ever stored."""

    http_status = 404
    code = "not-found"

    def __init__(self, type: str, id: str, version: int | None = None) -> None:
        self.type, self.id, self.version = type, id, version
        where = f"{type}/{id}" + (f"/_history/{version}" if version is not None else "")
        super().__init__(f"{where} is not known")


class Forbidden(StoreError):
    """The caller is known but may not do this (scope, access rule or write rule); the message says
    which rule, never what the hidden data holds."""

    http_status = 403
    code = "forbidden"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class Gone(StoreError):
    """The resource existed but its current version is a deletion (history is kept)."""

    http_status = 410
    code = "deleted"

    def __init__(self, type: str, id: str, version: int) -> None:
        self.type, self.id, self.version = type, id, version
        super().__init__(f"{type}/{id} was deleted (version {version})")


class VersionConflict(StoreError):
    """If-Match named a version that is no longer current: re-read, merge and retry."""

    http_status = 412
    code = "conflict"

    def __init__(self, type: str, id: str, expected: int, current: int | None, holder: str | None = None) -> None:
        self.type, self.id, self.expected, self.current, self.holder = type, id, expected, current, holder
        super().__init__(
            f"{type}/{id}: If-Match expected version {expected} but the current version is {current}"
            + (f"; it is now held by {holder}" if holder else "")
        )


class PreconditionFailed(StoreError):
    """A conditional create/update/delete matched more than one resource: make the criteria selective."""

    http_status = 412
    code = "multiple-matches"

    def __init__(self, message: str, *, matches: int | None = None) -> None:
        self.matches = matches
        super().__init__(message)


class ResourceConflict(StoreError):
    """The write contradicts stored state (wrong type/id in body, id clash): fix the request."""

    http_status = 409
    code = "conflict"

    def __init__(self, message: str, *, expression: str | None = None) -> None:
        self.expression = expression
        super().__init__(message)


class IllegalTransition(StoreError):
    """A Task update leaves the FHIR Task state machine (careflow.triggers.task_states); the message
    and ``allowed`` name the statuses the Task may move to."""

    http_status = 409
    code = "business-rule"

    def __init__(self, message: str, *, allowed: frozenset[str] | None = None) -> None:
        self.allowed = allowed or frozenset()
        self.expression = "Task.status"
        super().__init__(message)


class InvalidResource(StoreError):
    """The resource dict cannot be stored at all (no resourceType, malformed id)."""

    http_status = 400
    code = "invalid"

    def __init__(self, message: str, *, expression: str | None = None) -> None:
        self.expression = expression
        super().__init__(message)


class InvalidSearch(StoreError):
    """A search parameter is unknown, has a bad value or an unsupported modifier; ``param`` names it."""

    http_status = 400
    code = "invalid"

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        self.expression = param
        super().__init__(f"search parameter '{param}': {message}")


class UnsupportedSearch(InvalidSearch):
    """A standard R4 search parameter careflow does not support: refused, never ignored."""

    code = "not-supported"


# --- FHIR validation (careflow.fhir.validation) ---


class InvalidFhirResource(InvalidResource):
    """The resource is not valid FHIR R4; ``problems`` lists (FHIRPath expression, what is wrong) pairs."""

    def __init__(self, message: str, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__(message, expression=problems[0][0] if problems else None)


# --- FHIR R4 conformance checks (careflow.fhir.r4_schema, careflow.fhir.profiles) ---


class R4SchemaUnavailable(CareflowError):
    """The FHIR R4 JSON Schema file cannot be read: point CAREFLOW_R4_SCHEMA at a copy of fhir.schema.json."""


class ProfileDefinitionError(CareflowError):
    """A StructureDefinition in fhir_profiles/ is missing, unreadable or uses a rule the checker cannot enforce."""


# --- programme <-> PlanDefinition (careflow.programs.plandefinition) ---


class PlanDefinitionError(CareflowError):
    """A PlanDefinition or ActivityDefinition cannot be read back into a programme; ``path`` names the element."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.expression = path
        super().__init__(f"{path}: {message}")


class ProgramNotExportable(CareflowError):
    """A programme cannot be written as a valid PlanDefinition (e.g. two parts share an element id): rename."""


# --- engine (careflow.engine): failures a retry of the same step can cure ---


class TransientStoreError(StoreError):
    """The database failed for a passing reason (connection lost, lock timeout, serialization failure,
    deadlock): retry the step; every engine write is idempotent."""

    http_status = 503
    code = "transient"


# --- the engine's orchestration (workflows/) ---


class EngineError(CareflowError):
    """An engine run (enrolment, sweep, events, import, demo) could not finish; the message says why."""


class DatabaseUnavailable(EngineError):
    """The database stayed unreachable after the engine's retries: check it runs and the URL is right."""


class PortInUse(EngineError):
    """The port asked for the FHIR API is taken: pick another with --port."""


class OrchestratorUnavailable(EngineError):
    """Prefect's API (PREFECT_API_URL, or the temporary local server) cannot be reached or started."""
