"""Deterministic resource ids: planning the same thing twice yields the same ids, never a duplicate.

uuid5 over a fixed namespace and the natural key (patient, programme, activity, occurrence); the
store's primary key then makes a replayed plan a no-op.
"""

from __future__ import annotations

import hashlib
import uuid
from functools import lru_cache

NAMESPACE = uuid.UUID("0b7c3a52-5d3e-4f0e-9a49-6ca2ef1c0f10")
_NS_BYTES = NAMESPACE.bytes
_VARIANT = "89ab89ab89ab89ab"  # RFC 4122 variant: top two bits of byte 8 are 10


def _hashed(key: str) -> str:
    """Exactly ``str(uuid.uuid5(NAMESPACE, key))``, without building UUID objects (hot path)."""
    h = hashlib.sha1(_NS_BYTES + key.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[int(h[16], 16)]}{h[17:20]}-{h[20:32]}"


def _id(*key: object) -> str:
    return _hashed("|".join(str(k) for k in key))


def careplan_id(patient_id: str, program_id: str) -> str:
    return _hashed(f"careplan|{patient_id}|{program_id}")


def shared_careplan_id(patient_id: str) -> str:
    """The patient's one shared care plan, of which each programme's CarePlan is a part."""
    return _id("shared-careplan", patient_id)


@lru_cache(maxsize=4096)
def careteam_id(patient_id: str) -> str:
    """One CareTeam per patient, shared by all of the patient's plans."""
    return _id("careteam", patient_id)


def goal_id(patient_id: str, program_id: str, goal: str) -> str:
    return _hashed(f"goal|{patient_id}|{program_id}|{goal}")


def task_id(patient_id: str, program_id: str, activity: str, occurrence: int) -> str:
    return _hashed(f"task|{patient_id}|{program_id}|{activity}|{occurrence}")


def triggered_task_id(patient_id: str, program_id: str, trigger: str, cause: str) -> str:
    """A task raised by a trigger rule, keyed by what caused it (an overdue Task, an Observation)."""
    return _id("triggered", patient_id, program_id, trigger, cause)


def proposal_id(patient_id: str, program_ids: list[str]) -> str:
    """The one proposal to include a patient in a set of programmes."""
    return _id("proposal", patient_id, ",".join(sorted(program_ids)))


def task_output_id(task_id: str, index: int) -> str:
    """The Observation recording a completed Task's measured output."""
    return _id("task-output", task_id, index)


def end_of_care_id(patient_id: str) -> str:
    """The one Communication telling the team that a patient's care ended."""
    return _id("end-of-care", patient_id)


def task_identifier_value(careplan: str, activity: str, occurrence: int) -> str:
    return f"{careplan}/{activity}/{occurrence}"


def case_finding_id(patient_id: str, rule_id: str, evidence: list[str]) -> str:
    """A case-finding proposal, keyed by patient, rule and the evidence it rests on: a rerun over the
    same facts is the same Task; new evidence after a rejection is a new one."""
    return _id("case-finding", patient_id, rule_id, ",".join(sorted(evidence)))
