"""Backfill of the access columns for rows stored before migration 0003 (run by that migration).

Reads each current version once, sets ``resource.patient`` and derives the grants of every patient
from its Patient, CareTeam and Consent resources, the same pure functions the write path uses.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

import orjson
from sqlalchemy import Connection, text

from careflow.access.compartment import patient_of
from careflow.access.grants import derive_grants
from careflow.access.policy import default_policy

_BATCH = 2000


def backfill(conn: Connection) -> None:
    rows = conn.execute(text(
        "SELECT r.pk, r.type, v.content FROM resource r JOIN resource_version v "
        "ON v.res_pk = r.pk AND v.version = r.version WHERE v.content IS NOT NULL"
    ))
    updates: list[dict[str, Any]] = []
    relevant: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for pk, rtype, content in rows:
        body = orjson.loads(bytes(content))
        pid = patient_of(body)
        updates.append({"pk": pk, "patient": pid})
        if rtype in ("Patient", "CareTeam", "Consent") and pid:
            relevant[pid][rtype].append(body)
    for i in range(0, len(updates), _BATCH):
        conn.execute(text("UPDATE resource SET patient = :patient WHERE pk = :pk"), updates[i: i + _BATCH])
    policy, now = default_policy(), datetime.now(timezone.utc)
    grants: list[dict[str, Any]] = []
    for pid, by_type in relevant.items():
        patients = by_type.get("Patient") or [None]
        for g in derive_grants(patients[0], by_type.get("CareTeam", []), by_type.get("Consent", []), policy, now):
            grants.append({"patient_id": pid, "grantee": g.grantee, "reason": g.reason, "full": g.full,
                           "expires": g.expires})
    for i in range(0, len(grants), _BATCH):
        conn.execute(text(
            "INSERT INTO access_grant (patient_id, grantee, reason, \"full\", expires) "
            "VALUES (:patient_id, :grantee, :reason, :full, :expires)"), grants[i: i + _BATCH])
