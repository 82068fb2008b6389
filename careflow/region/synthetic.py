"""The mark every generated resource carries, so nobody mistakes demo data for a real patient's."""

from __future__ import annotations

from typing import Any

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


def synthetic_meta() -> dict[str, Any]:
    """A fresh ``meta`` with security label HL7 v3 ActReason HTEST ("test health data")."""
    return {"security": [{"system": ACT_REASON, "code": "HTEST", "display": "test health data"}]}
