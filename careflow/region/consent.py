"""The informed consent to electronic sharing that the demo region's chronically ill have given.

The access rules (careflow.access) share a patient's data with the care team only under an active
sharing Consent, as the Belgian hubs do; the region asks it at inclusion.  A few patients decline,
so the demo also shows a patient only their own GP (the GMD holder) can see.
"""

from __future__ import annotations

import zlib
from datetime import date
from typing import Any

from careflow.region.synthetic import synthetic_meta

LOINC = "http://loinc.org"
_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
DECLINE_PER_MILLE = 30  # about 3 % of the chronically ill decline sharing


def declines_sharing(patient_id: str) -> bool:
    """Deterministic per patient (no draw from the region's random stream, so nothing else moves)."""
    return zlib.crc32(f"consent:{patient_id}".encode()) % 1000 < DECLINE_PER_MILLE


def sharing_consent(*, resource_id: str, patient_ref: str, gp_ref: str, given: date) -> dict[str, Any]:
    """An active opt-in to sharing with the care team, recorded by the patient's GP."""
    return {
        "resourceType": "Consent",
        "id": resource_id,
        "meta": synthetic_meta(),
        "status": "active",
        "scope": {"coding": [{"system": _SCOPE, "code": "patient-privacy", "display": "Privacy Consent"}]},
        "category": [{"coding": [{"system": LOINC, "code": "59284-0", "display": "Patient Consent"}]}],
        "patient": {"reference": patient_ref},
        "dateTime": given.isoformat(),
        "performer": [{"reference": patient_ref}],
        "policyRule": {"coding": [{"system": _ACT_CODE, "code": "OPTIN", "display": "opt-in"}]},
        "provision": {"type": "permit", "period": {"start": given.isoformat()},
                      "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                                        "code": "PRCP", "display": "primary information recipient"}]},
                                 "reference": {"reference": gp_ref}}]},
    }
