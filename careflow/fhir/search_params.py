"""The search parameters careflow supports, per resource type: one registry for every consumer.

Index extraction (``careflow.fhir.search_index``), the query parser (``search_query``), the SQL and
in-memory stores and the CapabilityStatement all read this table, so a parameter is declared once and
behaves the same everywhere.  Paths are dotted element paths (lists are flattened at every step);
choice elements (``value[x]``) are listed once per concrete type.  FHIRPath is deliberately not used:
a path list is enough for the parameters careflow needs and is cheap to evaluate on 100k resources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

ParamType = Literal["token", "reference", "date", "string", "quantity", "uri", "number"]

PARAM_TYPES: tuple[str, ...] = ("token", "reference", "date", "string", "quantity", "uri", "number")

CAREFLOW_PARAM_BASE = "https://careflow.dev/fhir/SearchParameter"


@dataclass(frozen=True)
class SearchParam:
    """One search parameter of one resource type.

    ``targets`` lists the resource types a reference parameter may point to (chaining uses them).
    ``column`` marks the parameters every type has that live on the resource row, not in index
    tables (``_id``, ``_lastUpdated``).  ``definition`` is the canonical URL for the
    CapabilityStatement: the HL7 one, or a careflow one for careflow-defined parameters.
    """

    name: str
    type: ParamType
    paths: tuple[str, ...]
    targets: tuple[str, ...] = ()
    description: str = ""
    column: str | None = None
    definition: str | None = None

    @property
    def careflow_defined(self) -> bool:
        return bool(self.definition and self.definition.startswith(CAREFLOW_PARAM_BASE))


# parameters every resource type supports; they read columns of the resource row
COMMON_PARAMS: dict[str, SearchParam] = {
    "_id": SearchParam(
        "_id", "token", ("id",), description="Logical id of the resource", column="id",
        definition="http://hl7.org/fhir/SearchParameter/Resource-id",
    ),
    "_lastUpdated": SearchParam(
        "_lastUpdated", "date", ("meta.lastUpdated",), description="When the resource version last changed",
        column="last_updated", definition="http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
    ),
}

# result-shaping parameters the parser understands (not filters)
CONTROL_PARAMS: frozenset[str] = frozenset(
    {"_count", "_offset", "_sort", "_include", "_revinclude", "_summary", "_total", "_format", "_elements",
     "_include:iterate", "_revinclude:iterate", "_pretty"}
)


def _hl7(rtype: str, name: str) -> str:
    return f"http://hl7.org/fhir/SearchParameter/{rtype}-{name}"


def _p(rtype: str, name: str, type: ParamType, *paths: str, targets: tuple[str, ...] = (),
       description: str = "", careflow: bool = False) -> SearchParam:
    definition = f"{CAREFLOW_PARAM_BASE}/{rtype}-{name}" if careflow else _hl7(rtype, name)
    return SearchParam(name, type, tuple(paths), targets, description, None, definition)


_PATIENT_REF = ("Patient",)
_SUBJECT_REF = ("Patient", "Group")
_ACTORS = ("Practitioner", "PractitionerRole", "Organization", "Patient", "RelatedPerson", "CareTeam", "Device")
_DATE_CHOICES = ("DateTime", "Period", "Instant", "Timing")


def _choices(prefix: str, kinds: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(prefix + k for k in kinds)


def _build() -> dict[str, dict[str, SearchParam]]:
    reg: dict[str, list[SearchParam]] = {
        "Patient": [
            _p("Patient", "identifier", "token", "identifier", description="A patient identifier"),
            _p("Patient", "name", "string", "name", description="Any part of a name (family, given, prefix, suffix, text)"),
            _p("Patient", "family", "string", "name.family", description="A family name"),
            _p("Patient", "given", "string", "name.given", description="A given name"),
            _p("Patient", "birthdate", "date", "birthDate", description="Date of birth"),
            _p("Patient", "gender", "token", "gender", description="Administrative gender"),
            _p("Patient", "active", "token", "active", description="Whether the record is active"),
            _p("Patient", "general-practitioner", "reference", "generalPractitioner",
               targets=("Practitioner", "PractitionerRole", "Organization"), description="The patient's GP"),
            _p("Patient", "organization", "reference", "managingOrganization", targets=("Organization",),
               description="Managing organisation"),
        ],
        "Condition": [
            _p("Condition", "patient", "reference", "subject", targets=_PATIENT_REF, description="Who has the condition"),
            _p("Condition", "subject", "reference", "subject", targets=_SUBJECT_REF, description="Who has the condition"),
            _p("Condition", "code", "token", "code", description="Code of the condition"),
            _p("Condition", "clinical-status", "token", "clinicalStatus", description="active | recurrence | ..."),
            _p("Condition", "verification-status", "token", "verificationStatus", description="confirmed | ..."),
            _p("Condition", "category", "token", "category", description="Category of the condition"),
            _p("Condition", "onset-date", "date", *_choices("onset", ("DateTime", "Period")), description="Onset"),
            _p("Condition", "recorded-date", "date", "recordedDate", description="When recorded"),
        ],
        "Observation": [
            _p("Observation", "patient", "reference", "subject", targets=_PATIENT_REF, description="The subject patient"),
            _p("Observation", "subject", "reference", "subject", targets=_SUBJECT_REF + ("Location", "Device"),
               description="The subject"),
            _p("Observation", "code", "token", "code", description="What was observed"),
            _p("Observation", "category", "token", "category", description="Classification of the observation"),
            _p("Observation", "status", "token", "status", description="registered | preliminary | final | ..."),
            _p("Observation", "date", "date", *_choices("effective", _DATE_CHOICES), description="Clinically relevant time"),
            _p("Observation", "value-quantity", "quantity", "valueQuantity", description="The value (Quantity)"),
            _p("Observation", "value-concept", "token", "valueCodeableConcept", description="The value (CodeableConcept)"),
            _p("Observation", "component-code", "token", "component.code", description="Component code"),
            _p("Observation", "component-value-quantity", "quantity", "component.valueQuantity",
               description="Component value (Quantity)"),
            _p("Observation", "performer", "reference", "performer", targets=_ACTORS, description="Who performed it"),
            _p("Observation", "based-on", "reference", "basedOn", targets=("CarePlan", "ServiceRequest", "Task"),
               description="Fulfils plan, proposal or order"),
        ],
        # the medication classes a programme's only_if tests (careflow.planning.only_if)
        "MedicationStatement": [
            _p("MedicationStatement", "patient", "reference", "subject", targets=_PATIENT_REF,
               description="Who takes the medication"),
            _p("MedicationStatement", "subject", "reference", "subject", targets=_SUBJECT_REF,
               description="Who takes the medication"),
            _p("MedicationStatement", "code", "token", "medicationCodeableConcept",
               description="Code of the medication (ATC, SNOMED CT, CNK)"),
            _p("MedicationStatement", "status", "token", "status", description="active | completed | stopped | ..."),
            _p("MedicationStatement", "effective", "date", *_choices("effective", ("DateTime", "Period")),
               description="When it was taken"),
        ],
        "MedicationRequest": [
            _p("MedicationRequest", "patient", "reference", "subject", targets=_PATIENT_REF,
               description="Who the prescription is for"),
            _p("MedicationRequest", "subject", "reference", "subject", targets=_SUBJECT_REF,
               description="Who the prescription is for"),
            _p("MedicationRequest", "code", "token", "medicationCodeableConcept",
               description="Code of the medication (ATC, SNOMED CT, CNK)"),
            _p("MedicationRequest", "status", "token", "status", description="active | on-hold | cancelled | ..."),
            _p("MedicationRequest", "intent", "token", "intent", description="proposal | plan | order | ..."),
            _p("MedicationRequest", "authoredon", "date", "authoredOn", description="When it was written"),
        ],
        "CarePlan": [
            _p("CarePlan", "patient", "reference", "subject", targets=_PATIENT_REF, description="Who the plan is for"),
            _p("CarePlan", "subject", "reference", "subject", targets=_SUBJECT_REF, description="Who the plan is for"),
            _p("CarePlan", "status", "token", "status", description="draft | active | on-hold | revoked | completed | ..."),
            _p("CarePlan", "intent", "token", "intent", description="proposal | plan | order | option"),
            _p("CarePlan", "category", "token", "category", description="Type of plan"),
            _p("CarePlan", "identifier", "token", "identifier", description="External identifiers"),
            _p("CarePlan", "instantiates-canonical", "uri", "instantiatesCanonical",
               description="Instantiated PlanDefinition (canonical URL; matched as a uri, '|version' ignored)"),
            _p("CarePlan", "care-team", "reference", "careTeam", targets=("CareTeam",), description="Who's involved"),
            _p("CarePlan", "goal", "reference", "goal", targets=("Goal",), description="Desired outcome"),
            _p("CarePlan", "condition", "reference", "addresses", targets=("Condition",), description="Health issues addressed"),
            _p("CarePlan", "date", "date", "period", description="Time period the plan covers"),
            _p("CarePlan", "based-on", "reference", "basedOn", targets=("CarePlan",), description="Fulfils CarePlan"),
            _p("CarePlan", "part-of", "reference", "partOf", targets=("CarePlan",), description="Part of referenced CarePlan"),
            _p("CarePlan", "activity-reference", "reference", "activity.reference",
               targets=("Task", "ServiceRequest", "Appointment", "MedicationRequest", "RequestGroup"),
               description="Activity details defined in a specific resource"),
        ],
        "Task": [
            _p("Task", "patient", "reference", "for", targets=_PATIENT_REF, description="Beneficiary patient"),
            _p("Task", "subject", "reference", "for", targets=("Patient", "Group", "Device"),
               description="Beneficiary of the task (Task.for)"),
            _p("Task", "status", "token", "status", description="draft | requested | ready | ... | completed"),
            _p("Task", "business-status", "token", "businessStatus", description="Business status"),
            _p("Task", "intent", "token", "intent", description="proposal | plan | order | ..."),
            _p("Task", "priority", "token", "priority", description="routine | urgent | asap | stat"),
            _p("Task", "code", "token", "code", description="Task type"),
            _p("Task", "identifier", "token", "identifier", description="Business identifier"),
            _p("Task", "owner", "reference", "owner", targets=_ACTORS, description="Responsible individual or team"),
            _p("Task", "requester", "reference", "requester", targets=_ACTORS, description="Who asked for it"),
            _p("Task", "based-on", "reference", "basedOn", targets=("CarePlan", "ServiceRequest", "Task"),
               description="Request fulfilled by this task (usually the CarePlan)"),
            _p("Task", "part-of", "reference", "partOf", targets=("Task",), description="Composite task"),
            _p("Task", "focus", "reference", "focus", description="What the task is acting on"),
            _p("Task", "encounter", "reference", "encounter", targets=("Encounter",), description="Encounter"),
            _p("Task", "authored-on", "date", "authoredOn", description="Creation date"),
            _p("Task", "modified", "date", "lastModified", description="Last modification date"),
            _p("Task", "period", "date", "executionPeriod", description="Execution period"),
            _p("Task", "due-date", "date", "restriction.period.end", careflow=True,
               description="careflow-defined: when the task is due (Task.restriction.period.end)"),
            _p("Task", "instantiates-canonical", "uri", "instantiatesCanonical",
               description="Instantiated ActivityDefinition (canonical URL)"),
        ],
        "Goal": [
            _p("Goal", "patient", "reference", "subject", targets=_PATIENT_REF, description="Who the goal is for"),
            _p("Goal", "subject", "reference", "subject", targets=("Patient", "Group", "Organization"),
               description="Who the goal is for"),
            _p("Goal", "lifecycle-status", "token", "lifecycleStatus", description="proposed | planned | active | ..."),
            _p("Goal", "achievement-status", "token", "achievementStatus", description="in-progress | achieved | ..."),
            _p("Goal", "category", "token", "category", description="E.g. treatment, dietary, behavioral"),
            _p("Goal", "target-date", "date", "target.dueDate", description="Reach the goal on or before"),
            _p("Goal", "identifier", "token", "identifier", description="External identifiers"),
        ],
        "CareTeam": [
            _p("CareTeam", "patient", "reference", "subject", targets=_PATIENT_REF, description="Who the team cares for"),
            _p("CareTeam", "subject", "reference", "subject", targets=("Patient", "Group"), description="Who the team cares for"),
            _p("CareTeam", "participant", "reference", "participant.member",
               targets=("Practitioner", "PractitionerRole", "Organization", "Patient", "RelatedPerson", "CareTeam"),
               description="A team member"),
            _p("CareTeam", "status", "token", "status", description="proposed | active | suspended | inactive | ..."),
            _p("CareTeam", "category", "token", "category", description="Type of team"),
            _p("CareTeam", "identifier", "token", "identifier", description="External identifiers"),
        ],
        "PractitionerRole": [
            _p("PractitionerRole", "role", "token", "code", description="Roles the practitioner may perform"),
            _p("PractitionerRole", "specialty", "token", "specialty", description="Specialty"),
            _p("PractitionerRole", "practitioner", "reference", "practitioner", targets=("Practitioner",),
               description="The practitioner"),
            _p("PractitionerRole", "organization", "reference", "organization", targets=("Organization",),
               description="The organisation where the role is available"),
            _p("PractitionerRole", "location", "reference", "location", targets=("Location",), description="Where"),
            _p("PractitionerRole", "identifier", "token", "identifier", description="Business identifier"),
            _p("PractitionerRole", "active", "token", "active", description="Whether the role is in active use"),
        ],
        "Practitioner": [
            _p("Practitioner", "identifier", "token", "identifier", description="A practitioner identifier"),
            _p("Practitioner", "name", "string", "name", description="Any part of a name"),
            _p("Practitioner", "family", "string", "name.family", description="A family name"),
            _p("Practitioner", "given", "string", "name.given", description="A given name"),
            _p("Practitioner", "active", "token", "active", description="Whether the record is active"),
        ],
        "Organization": [
            _p("Organization", "identifier", "token", "identifier", description="An organisation identifier"),
            _p("Organization", "name", "string", "name", "alias", description="Name or alias"),
            _p("Organization", "type", "token", "type", description="Kind of organisation"),
            _p("Organization", "partof", "reference", "partOf", targets=("Organization",), description="Parent organisation"),
            _p("Organization", "active", "token", "active", description="Whether the record is active"),
        ],
        "Location": [
            _p("Location", "name", "string", "name", "alias", description="Name or alias"),
            _p("Location", "identifier", "token", "identifier", description="Identifier"),
            _p("Location", "organization", "reference", "managingOrganization", targets=("Organization",),
               description="Managing organisation"),
        ],
        "Group": [
            _p("Group", "identifier", "token", "identifier", description="Identifier"),
            _p("Group", "member", "reference", "member.entity", targets=("Patient", "Practitioner", "PractitionerRole"),
               description="Member of the group"),
        ],
    }
    for kind in ("PlanDefinition", "ActivityDefinition"):
        reg[kind] = [
            _p(kind, "url", "uri", "url", description="Canonical URL"),
            _p(kind, "version", "token", "version", description="Business version"),
            _p(kind, "status", "token", "status", description="draft | active | retired | unknown"),
            _p(kind, "name", "string", "name", description="Computationally friendly name"),
            _p(kind, "title", "string", "title", description="Human-friendly name"),
            _p(kind, "identifier", "token", "identifier", description="External identifier"),
        ]
    return {t: {p.name: p for p in ps} for t, ps in reg.items()}


REGISTRY: dict[str, dict[str, SearchParam]] = _build()

_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


def is_resource_type_name(name: str) -> bool:
    """Shape check only (the API validates the resource itself against fhir.resources at the edge)."""
    return bool(_TYPE_NAME.match(name))


def params_for(rtype: str) -> dict[str, SearchParam]:
    """Every search parameter of ``rtype`` (declared ones plus ``_id`` / ``_lastUpdated``)."""
    return {**COMMON_PARAMS, **REGISTRY.get(rtype, {})}


def get_param(rtype: str, name: str) -> SearchParam | None:
    return COMMON_PARAMS.get(name) or REGISTRY.get(rtype, {}).get(name)


def indexed_params(rtype: str) -> tuple[SearchParam, ...]:
    """The parameters whose values are extracted into index tables (everything but column params)."""
    return tuple(REGISTRY.get(rtype, {}).values())


def searchable_types() -> tuple[str, ...]:
    """Resource types with declared parameters (others still support ``_id`` and ``_lastUpdated``)."""
    return tuple(sorted(REGISTRY))
