"""Which patient a resource belongs to: the key every access rule narrows on.

The store records it beside each resource (``resource.patient``), computed here on every write, so
narrowing a query to "patients this caller may see" is one indexed column test inside the query.

Three answers:
* a patient id: the resource is in that patient's compartment (Patient itself, or it references a
  Patient through the element the R4 Patient compartment names for its type);
* ``None``: a directory resource that belongs to no patient (Practitioner, Organization, the
  programmes...), visible to every signed-in caller whose scopes allow the type;
* ``ORPHAN`` (``""``): patient data without a patient reference.  Nobody but the system sees it,
  so a careless client cannot publish clinical data to the whole region by leaving ``subject`` out.
"""

from __future__ import annotations

from typing import Any

ORPHAN = ""

# Types that never belong to a patient.  Everything else is patient data.
DIRECTORY_TYPES: frozenset[str] = frozenset({
    "Practitioner", "PractitionerRole", "Organization", "Location", "HealthcareService", "Endpoint",
    "PlanDefinition", "ActivityDefinition", "Measure", "Questionnaire", "ValueSet", "CodeSystem",
    "StructureDefinition", "SearchParameter", "OperationDefinition", "CapabilityStatement", "Library",
    "Subscription", "Device", "Medication", "Substance", "Group",
})

# Where each patient-data type points at its patient (R4 Patient compartment, first match wins).
PATIENT_PATHS: dict[str, tuple[str, ...]] = {
    "Observation": ("subject",),
    "Condition": ("subject",),
    "CarePlan": ("subject",),
    "Goal": ("subject",),
    "CareTeam": ("subject",),
    "Task": ("for",),
    "Consent": ("patient",),
    "Encounter": ("subject",),
    "EpisodeOfCare": ("patient",),
    "MedicationStatement": ("subject",),
    "MedicationRequest": ("subject",),
    "MedicationAdministration": ("subject",),
    "MedicationDispense": ("subject",),
    "RiskAssessment": ("subject",),
    "QuestionnaireResponse": ("subject", "source"),
    "RelatedPerson": ("patient",),
    "Communication": ("subject",),
    "CommunicationRequest": ("subject",),
    "ServiceRequest": ("subject",),
    "DocumentReference": ("subject",),
    "DiagnosticReport": ("subject",),
    "Procedure": ("subject",),
    "Immunization": ("patient",),
    "AllergyIntolerance": ("patient",),
    "Flag": ("subject",),
    "ClinicalImpression": ("subject",),
    "DeviceRequest": ("subject",),
    "NutritionOrder": ("patient",),
    "FamilyMemberHistory": ("patient",),
    "MeasureReport": ("subject",),
    "Appointment": ("participant.actor",),
    "Coverage": ("beneficiary",),
    "Provenance": ("patient",),
    "AuditEvent": ("patient",),
}
_FALLBACK = ("subject", "patient", "for", "beneficiary")


def patient_id_of_reference(ref: Any) -> str | None:
    """``Patient/123`` (relative, absolute or versioned) -> ``123``; anything else -> None."""
    if not isinstance(ref, dict):
        return None
    text = ref.get("reference")
    if not isinstance(text, str):
        return None
    parts = text.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
        return parts[-1]
    return None


def _values(resource: dict[str, Any], path: str) -> list[Any]:
    nodes: list[Any] = [resource]
    for step in path.split("."):
        nxt: list[Any] = []
        for node in nodes:
            if isinstance(node, dict) and step in node:
                value = node[step]
                nxt.extend(value if isinstance(value, list) else [value])
        nodes = nxt
    return nodes


def patient_of(resource: dict[str, Any] | None) -> str | None:
    """The patient id ``resource`` belongs to, ``None`` for directory data, ``ORPHAN`` otherwise."""
    if resource is None:
        return ORPHAN
    rtype = resource.get("resourceType")
    if rtype == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) else ORPHAN
    if rtype in DIRECTORY_TYPES:
        return None
    for path in PATIENT_PATHS.get(str(rtype), _FALLBACK):
        for value in _values(resource, path):
            pid = patient_id_of_reference(value)
            if pid:
                return pid
    return ORPHAN
