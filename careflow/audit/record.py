"""What the store captures of one interaction, and the AuditEvent (IHE BALP) written for it.

The store fills an :class:`AuditRecord` as the interaction runs (the resources it returned or wrote,
by reference); the log turns it into an AuditEvent when it appends it (off the request path, see
``careflow.audit.log``).  Pure: no storage here.

Search values may be private (a name, a national number): the query kept in ``entity.query`` has
every value in clear only when it cannot be one (paging and result parameters, references, which
are ids, and non-identifying codes and dates); any other value is replaced by ``hmac:`` and a keyed
hash (HMAC-SHA256 with the audit key, 128 bits), so the table shows that a name was searched for,
and an auditor holding the key can test whether it was a given one, but it never shows the name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable
from urllib.parse import urlencode

from careflow.access.compartment import ORPHAN, patient_of
from careflow.access.principal import Principal
from careflow.audit.context import RequestContext
from careflow.fhir.identifying import is_identifying
from careflow.fhir.search_params import get_param, is_resource_type_name
from careflow.fhir.search_values import instant_text
from careflow.store.port import UNKNOWN

BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
DCM = "http://dicom.nema.org/resources/ontology/DCM"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
OPERATION_SYSTEM = "https://careflow.dev/fhir/CodeSystem/operation"
OUTCOMES = ("0", "4", "8", "12")
# subtype (restful-interaction code) -> BALP action
ACTIONS = {
    "read": "R", "vread": "R", "search-type": "E", "search-system": "E", "history-instance": "R",
    "history-type": "E", "history-system": "E", "create": "C", "update": "U", "patch": "U", "delete": "D",
    "operation": "E", "transaction": "E", "batch": "E",
}
_PROFILE = {"C": "Create", "R": "Read", "U": "Update", "D": "Delete", "E": "Query"}
_CLEAR_CONTROL = frozenset({
    "_count", "_offset", "_sort", "_include", "_revinclude", "_include:iterate", "_revinclude:iterate",
    "_total", "_summary", "_elements", "_id", "_lastUpdated", "_since", "_format", "_pretty",
})
SITE = socket.gethostname()

@dataclass
class AuditRecord:
    """One interaction as the store saw it.  ``entities``: (letter, reference ``Type/id``, version,
    patient id or None) of what was returned (``r``) or written (``c`` ``u`` ``d``); ``params``: the
    raw search parameters (redacted when the event is built)."""

    subtype: str
    principal: Principal
    recorded: datetime
    request: RequestContext | None = None
    rtype: str | None = None
    rid: str | None = None
    operation: str | None = None
    params: tuple[tuple[str, str], ...] | None = None
    entities: list[tuple[str, Any]] = field(default_factory=list)
    patients: set[str] = field(default_factory=set)
    outcome: str = "0"
    outcome_desc: str | None = None
    purpose: str | None = None

    @property
    def action(self) -> str:
        return ACTIONS.get(self.subtype, "E")

    def add(self, letter: str, stored: Any) -> None:
        """Name a resource returned (``r``) or written (``c`` ``u`` ``d``): a ``careflow.store.port.Stored``
        (its patient is worked out when the event is built, off the request path) or a tuple
        (rtype, id, version, patient id)."""
        self.entities.append((letter, stored))

    def fail(self, exc: BaseException, prefix: str = "") -> None:
        self.outcome, text = outcome_of(exc)
        self.outcome_desc = prefix + text

def outcome_of(exc: BaseException) -> tuple[str, str]:
    """BALP outcome of a failure: 4 (minor: the request was refused or wrong, 4xx), 8 (serious: the
    server failed, 5xx), 12 (major: an unexpected error).  The description is the error's class and
    HTTP status only: error messages may quote values."""
    from careflow.errors import CareflowError

    status = getattr(exc, "http_status", None)
    name = type(exc).__name__
    if isinstance(status, int) and status < 500:
        return "4", f"{name} ({status})"
    if isinstance(exc, CareflowError) or isinstance(status, int):
        return "8", f"{name} ({status or 500})"
    return "12", name

def keyed_hash(key: bytes, rtype: str | None, name: str, value: str) -> str:
    return "hmac:" + hmac.new(key, f"{rtype}|{name}|{value}".encode(), hashlib.sha256).hexdigest()[:32]

def value_in_clear(rtype: str | None, name: str) -> bool:
    """May the value of search parameter ``name`` be kept in clear? Only when it cannot be a name,
    a national number, a birth date or any other free text (see the module docstring)."""
    if name in _CLEAR_CONTROL:
        return True
    if rtype is None:
        return False
    base, _, modifier = name.partition(":")
    if "." in base:
        return False  # chained: the value belongs to another resource's parameter
    param = get_param(rtype, base)
    if param is None:
        return False
    if param.type == "reference":
        return modifier in ("", "missing") or is_resource_type_name(modifier)
    if modifier not in ("", "missing", "not"):
        return False
    if param.type in ("quantity", "number", "uri"):
        return True
    if param.type in ("token", "date"):
        return not is_identifying(rtype, param) and base != "identifier"
    return False

def redacted_query(key: bytes, rtype: str | None, params: tuple[tuple[str, str], ...]) -> str:
    pairs = [(n, v if value_in_clear(rtype, n) else keyed_hash(key, rtype, n, v)) for n, v in params]
    path = rtype or ""
    return path + ("?" + urlencode(pairs) if pairs else "")

def _who(ref: str) -> dict[str, Any]:
    kind, _, rid = ref.partition("/")
    if rid and "/" not in rid and is_resource_type_name(kind):
        return {"reference": ref}
    return {"display": ref}

def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out

def _resolved(record: AuditRecord) -> list[tuple[str, str, int | None, str | None]]:
    """(letter, Type/id, version, patient id) of each entity."""
    out = []
    for letter, item in record.entities:
        if isinstance(item, tuple):
            rtype, rid, version, pid = item
        else:
            rtype, rid, version = item.type, item.id, item.version
            if item.deleted:
                pid = None
            elif item.compartment is not UNKNOWN:
                pid = item.compartment  # read with the row: no second parse of the JSON
            else:
                pid = patient_of(item.resource)
        out.append((letter, f"{rtype}/{rid}", version, pid if pid != ORPHAN else None))
    return out


def patients_of(record: AuditRecord, resolved: list[tuple[str, str, int | None, str | None]]) -> set[str]:
    """The patients an interaction concerned: of what it returned or wrote, the Patient it named,
    and the patient its search was narrowed to."""
    out = set(record.patients) | {pid for _, _, _, pid in resolved if pid}
    if record.rtype == "Patient" and record.rid:
        out.add(record.rid)
    for name, value in record.params or ():
        # only a plain reference search names a patient (``patient:identifier=`` carries a national number)
        if name not in ("patient", "subject", "beneficiary", "subject:Patient") or record.rtype == "AuditEvent":
            continue
        if not value_in_clear(record.rtype, name):
            continue
        for one in value.split(","):
            if one.startswith("Patient/"):
                out.add(one.split("/", 1)[1])
            elif name == "patient" and one and "/" not in one:
                out.add(one)
    return {p for p in out if p and "/" not in p}

def compact_record(record: AuditRecord, event_id: str, key: bytes) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """What the log stores (and chains) for ``record``, and its entity index rows ((reference, "p"|"o")).

    Only the facts, in a few short keys: a search that returned fifty Tasks is fifty (reference,
    version) pairs, not fifty BALP entity elements.  :func:`expand` builds the AuditEvent from it when
    it is read (auditors read far less often than everyone else writes).  The search values are
    redacted here, with the key (see the module docstring)."""
    p = record.principal
    resolved = _resolved(record)
    patients = sorted(patients_of(record, resolved))
    out: dict[str, Any] = {
        "v": 1, "id": event_id, "t": instant_text(record.recorded), "s": record.subtype, "outcome": record.outcome,
        "who": p.id, "kind": p.kind, "site": SITE,
    }
    optional = {
        "op": record.operation, "desc": record.outcome_desc, "purpose": record.purpose,
        "role": p.discipline, "alt": p.acts_as[-1] if p.acts_as else None, "for": p.on_behalf_of,
        "client": p.client_id,
        "ip": record.request.client_address if record.request is not None else None,
        "rid": record.request.request_id if record.request is not None else None,
    }
    out.update((k, v) for k, v in optional.items() if v)
    if patients:
        out["pt"] = patients
    if resolved:
        out["e"] = [[ref, version] for _letter, ref, version, _pid in resolved]
    if record.params is not None and record.action == "E" and record.operation is None:
        out["q"] = redacted_query(key, record.rtype, record.params)
    rows = [(f"Patient/{pid}", "p") for pid in patients]
    seen: set[str] = set()
    for _letter, ref, _version, _pid in resolved:
        if ref not in seen:
            seen.add(ref)
            rows.append((ref, "o"))
    return out, rows


def columns(compact: dict[str, Any]) -> tuple[Any, ...]:
    """(id, recorded, action, subtype, outcome, agent): the search columns a stored entry implies."""
    if compact.get("resourceType") == "AuditEvent":  # an entry written before the compact form
        event = compact
        who = next((a.get("who") or {} for a in event.get("agent") or () if a.get("requestor")), {})
        subtype = next((s.get("code") for s in event.get("subtype") or ()
                        if s.get("system", "").endswith("restful-interaction")), "")
        return (event.get("id"), event.get("recorded"), event.get("action"), subtype, event.get("outcome"),
                who.get("reference") or who.get("display") or "")
    subtype = compact.get("s")
    return (compact.get("id"), compact.get("t"), ACTIONS.get(str(subtype), "E"), subtype, compact.get("outcome"),
            str(compact.get("who", ""))[:140])


def expand(compact: dict[str, Any]) -> dict[str, Any]:
    """The AuditEvent (IHE BALP) of a stored entry (pure; an entry already stored as one is returned as is)."""
    if compact.get("resourceType") == "AuditEvent":
        return compact
    subtype_code = compact["s"]
    action = ACTIONS.get(subtype_code, "E")
    patients = compact.get("pt") or []
    profile = ("Patient" if patients else "") + _PROFILE[action]
    subtype = [_coding(INTERACTION, subtype_code, subtype_code)]
    if compact.get("op"):
        subtype.append(_coding(OPERATION_SYSTEM, compact["op"], compact["op"]))
    network = {"address": compact["ip"], "type": "2"} if compact.get("ip") else None  # 2: IP address
    user: dict[str, Any] = {
        "type": {"coding": [_coding("http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                                    "humanuser" if compact.get("kind") in ("practitioner", "patient", "auditor")
                                    else "dataprocessor")]},
        "who": _who(compact["who"]), "requestor": True,
    }
    if compact.get("role"):
        user["role"] = [{"coding": [_coding("https://careflow.dev/fhir/CodeSystem/role", compact["role"])]}]
    if compact.get("alt"):
        user["altId"] = compact["alt"]
    if network:
        user["network"] = network
    agents = [user]
    if compact.get("for"):
        agents.append({"type": {"coding": [_coding("http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                                   "PRF", "performer")]},
                       "who": _who(compact["for"]), "requestor": False})
    if compact.get("client"):
        client: dict[str, Any] = {"type": {"coding": [_coding(DCM, "110153", "Source Role ID")]},
                                  "who": {"identifier": {"value": compact["client"]}}, "requestor": False}
        if network:
            client["network"] = network
        agents.append(client)
    agents.append({"type": {"coding": [_coding(DCM, "110152", "Destination Role ID")]},
                   "who": {"display": "careflow FHIR server"}, "requestor": False})
    entities: list[dict[str, Any]] = []
    for pid in patients:
        entities.append({"what": {"reference": f"Patient/{pid}"},
                         "type": _coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "1", "Person"),
                         "role": _coding("http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient")})
    for ref, version in compact.get("e") or ():
        what = f"{ref}/_history/{version}" if version is not None else ref
        entities.append({"what": {"reference": what},
                         "type": _coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object"),
                         "role": _coding("http://terminology.hl7.org/CodeSystem/object-role", "4", "Domain Resource")})
    if "q" in compact:
        entities.append({"type": _coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object"),
                         "role": _coding("http://terminology.hl7.org/CodeSystem/object-role", "24", "Query"),
                         "query": base64.b64encode(compact["q"].encode()).decode()})
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": compact["id"],
        "meta": {"profile": [BALP + profile]},
        "type": _coding("http://terminology.hl7.org/CodeSystem/audit-event-type", "rest",
                        "Restful Operation"),
        "subtype": subtype,
        "action": action,
        "recorded": compact["t"],
        "outcome": compact["outcome"],
        "agent": agents,
        "source": {"site": compact.get("site") or SITE, "observer": {"display": "careflow FHIR server"},
                   "type": [_coding("http://terminology.hl7.org/CodeSystem/security-source-type", "4",
                                    "Application Server")]},
    }
    if compact.get("desc"):
        event["outcomeDesc"] = compact["desc"]
    if compact.get("purpose"):
        event["purposeOfEvent"] = [{"coding": [_coding("http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                                       compact["purpose"])]}]
    if compact.get("rid"):
        event["extension"] = [{"url": "https://careflow.dev/fhir/StructureDefinition/request-id",
                               "valueString": compact["rid"]}]
    if entities:
        event["entity"] = entities
    return event


def audit_event(record: AuditRecord, event_id: str, key: bytes) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The AuditEvent for ``record`` and its entity index rows (what a reader gets from the log)."""
    compact, rows = compact_record(record, event_id, key)
    return expand(compact), rows

Redactor = Callable[[str | None, tuple[tuple[str, str], ...]], str]
