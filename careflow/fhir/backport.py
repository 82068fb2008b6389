"""Topic-based Subscriptions on R4 after the Subscriptions R5 Backport IG (pure).

careflow publishes two topics (canonical URLs; no SubscriptionTopic resource, which R4 lacks):
Task changes and CarePlan changes, each filtered by patient, by owner (Tasks) or by care team. A
Subscription names its topic in ``criteria`` and its filters in ``backport-filter-criteria``
extensions on ``criteria`` (``Task?patient=Patient/1``; several extensions all hold; a comma inside
one value is "any of"). This module reads such a Subscription into a :class:`Spec`, decides whether a
resource version matches it, and builds what goes on the wire: the R4 ``Parameters`` of the
SubscriptionStatus and the notification ``Bundle`` (type ``history``, the status its first entry).

Kept apart from delivery (careflow.engine.subscriptions) so every rule here is tested without a
database or a socket.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from careflow.naming import SUBSCRIPTION_OWNER

TOPIC_BASE = "https://careflow.dev/fhir/SubscriptionTopic/"
TASK_TOPIC = TOPIC_BASE + "task-changes"
CAREPLAN_TOPIC = TOPIC_BASE + "careplan-changes"
# topic -> (resource type, the filters it offers)
TOPICS: dict[str, tuple[str, frozenset[str]]] = {
    TASK_TOPIC: ("Task", frozenset({"patient", "owner", "care-team"})),
    CAREPLAN_TOPIC: ("CarePlan", frozenset({"patient", "care-team"})),
}

_IG = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
SUBSCRIPTION_PROFILE = _IG + "backport-subscription"
STATUS_PROFILE = _IG + "backport-subscription-status-r4"
FILTER_EXT = _IG + "backport-filter-criteria"
PAYLOAD_EXT = _IG + "backport-payload-content"
HEARTBEAT_EXT = _IG + "backport-heartbeat-period"
TIMEOUT_EXT = _IG + "backport-timeout"
MAX_COUNT_EXT = _IG + "backport-max-count"
TOPIC_CANONICAL_EXT = _IG + "capabilitystatement-subscriptiontopic-canonical"
# who made the Subscription: stamped by the server on every client write, never taken from the body
OWNER_EXT = SUBSCRIPTION_OWNER

CONTENTS = ("empty", "id-only", "full-resource")
DEFAULT_CONTENT = "id-only"
NOTIFICATION_TYPES = ("handshake", "heartbeat", "event-notification", "query-status", "query-event")
MAX_BATCH = 50  # events in one notification at most (the subscription's max-count may lower it)
DEFAULT_TIMEOUT = 10
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")


class SubscriptionProblem(ValueError):
    """A Subscription careflow cannot serve; the message says what to change."""


@dataclass(frozen=True)
class Spec:
    """What a Subscription asks for, as careflow serves it."""

    topic: str
    rtype: str
    filters: tuple[tuple[str, frozenset[str]], ...]  # (parameter, any of these references); all must hold
    endpoint: str
    payload: str  # the mime type
    content: str  # empty | id-only | full-resource
    heartbeat: int | None  # seconds between heartbeats when nothing else is sent
    timeout: int
    max_count: int
    headers: tuple[tuple[str, str], ...]  # extra HTTP headers (none today: see parse)
    end: datetime | None = None  # Subscription.end: nothing is sent after it


def _ext(element: Any, url: str) -> list[dict[str, Any]]:
    found = element.get("extension") if isinstance(element, dict) else None
    return [e for e in found if isinstance(e, dict) and e.get("url") == url] if isinstance(found, list) else []


def _ref_key(text: str) -> str:
    """``https://x/fhir/Patient/1``, ``Patient/1/_history/2`` -> ``Patient/1``."""
    parts = text.strip().split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return "/".join(parts[-2:]) if len(parts) >= 2 else text.strip()


def _filters(rtype: str, offered: frozenset[str], texts: list[str]) -> tuple[tuple[str, frozenset[str]], ...]:
    out: list[tuple[str, frozenset[str]]] = []
    for text in texts:
        head, sep, query = text.partition("?")
        if not sep:
            head, query = rtype, text
        if head and head != rtype:
            raise SubscriptionProblem(f"filter criteria {text!r} must be about {rtype} (this topic's resource)")
        pairs = parse_qsl(query, keep_blank_values=True)
        if not pairs:
            raise SubscriptionProblem(f"filter criteria {text!r} names no filter")
        for name, value in pairs:
            if name not in offered:
                raise SubscriptionProblem(
                    f"filter {name!r} is not offered by this topic (offered: {', '.join(sorted(offered))})")
            refs = frozenset(_ref_key(v) for v in value.split(",") if v.strip())
            if not refs or any("/" not in r for r in refs):
                raise SubscriptionProblem(f"filter {name}={value!r} needs references such as Patient/123")
            out.append((name, refs))
    return tuple(out)


def _endpoint(url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise SubscriptionProblem("a rest-hook Subscription needs channel.endpoint")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and host in _LOOPBACK:
        return url  # plain http only to this machine (tests, a local relay); patient ids travel in it
    raise SubscriptionProblem("channel.endpoint must be an https URL (http only to localhost)")


def _instant(text: Any) -> datetime | None:
    if not isinstance(text, str) or len(text) < 10:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _whole(value: Any, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SubscriptionProblem(f"{what} must be a whole number from {low} to {high}")
    return value


def parse(subscription: dict[str, Any]) -> Spec:
    """The :class:`Spec` of a Subscription resource, or :class:`SubscriptionProblem`."""
    criteria = subscription.get("criteria")
    topic = TOPICS.get(criteria) if isinstance(criteria, str) else None
    if topic is None:
        raise SubscriptionProblem(
            f"criteria must be one of careflow's topics: {', '.join(TOPICS)} (topic-based, Backport IG)")
    rtype, offered = topic
    texts = [e.get("valueString") for e in _ext(subscription.get("_criteria"), FILTER_EXT)]
    if any(not isinstance(t, str) or not t for t in texts):
        raise SubscriptionProblem("backport-filter-criteria takes a valueString such as Task?patient=Patient/123")
    channel = subscription.get("channel")
    if not isinstance(channel, dict):
        raise SubscriptionProblem("a Subscription needs a channel")
    if channel.get("type") != "rest-hook":
        raise SubscriptionProblem("careflow delivers by rest-hook only (channel.type)")
    payload = channel.get("payload") or "application/fhir+json"
    if payload not in ("application/fhir+json", "application/json"):
        raise SubscriptionProblem("channel.payload must be application/fhir+json")
    contents = [e.get("valueCode") for e in _ext(channel.get("_payload"), PAYLOAD_EXT)]
    content = contents[0] if contents else DEFAULT_CONTENT
    if content not in CONTENTS:
        raise SubscriptionProblem(f"backport-payload-content must be one of {', '.join(CONTENTS)}")
    beats = [e.get("valueUnsignedInt") for e in _ext(channel, HEARTBEAT_EXT)]
    heartbeat = _whole(beats[0], "backport-heartbeat-period", 1, 86400) if beats else None
    timeouts = [e.get("valueUnsignedInt") for e in _ext(channel, TIMEOUT_EXT)]
    timeout = _whole(timeouts[0], "backport-timeout", 1, 60) if timeouts else DEFAULT_TIMEOUT
    counts = [e.get("valuePositiveInt") for e in _ext(channel, MAX_COUNT_EXT)]
    max_count = _whole(counts[0], "backport-max-count", 1, MAX_BATCH) if counts else MAX_BATCH
    if channel.get("header"):
        # a Subscription is directory data every signed-in caller may read: no place for a secret
        raise SubscriptionProblem("channel.header is not kept (Subscriptions are readable by every signed-in "
                                  "caller); authenticate notifications by their X-Careflow-Signature instead")
    headers: tuple[tuple[str, str], ...] = ()
    end = _instant(subscription.get("end"))
    return Spec(str(criteria), rtype, _filters(rtype, offered, [str(t) for t in texts]),
                _endpoint(channel.get("endpoint")), payload, content, heartbeat, timeout, max_count, headers, end)


def _refs(resource: dict[str, Any], element: str) -> set[str]:
    value = resource.get(element)
    out: set[str] = set()
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict) and isinstance(item.get("reference"), str):
            out.add(_ref_key(item["reference"]))
    return out


_PATIENT_ELEMENT = {"Task": "for", "CarePlan": "subject"}


def matches(spec: Spec, resource: dict[str, Any], team_patient: Callable[[str], str | None]) -> bool:
    """Does this version of a Task or CarePlan concern the Subscription's filters?

    ``team_patient`` answers a CareTeam reference with its patient (``Patient/1``) or None: a care
    team filter matches the Tasks and CarePlans of the team's patient, the Tasks the team owns and the
    CarePlans naming the team."""
    if resource.get("resourceType") != spec.rtype:
        return False
    patient = _refs(resource, _PATIENT_ELEMENT[spec.rtype])
    for name, wanted in spec.filters:
        if name == "patient":
            ok = bool(patient & wanted)
        elif name == "owner":
            ok = bool(_refs(resource, "owner") & wanted)
        else:  # care-team
            direct = _refs(resource, "owner" if spec.rtype == "Task" else "careTeam")
            ok = bool(direct & wanted) or any(team_patient(t) in patient for t in wanted)
        if not ok:
            return False
    return True


@dataclass(frozen=True)
class Event:
    """One numbered event of one Subscription, as a notification carries it."""

    number: int
    occurred: datetime
    focus: str  # Type/id
    action: str  # create | update | delete
    resource: dict[str, Any] | None = None  # only for full-resource content


def instant(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_parameters(base: str, sub_id: str, topic: str, status: str, kind: str, events_since: int,
                      events: list[Event], content: str, error: str | None = None) -> dict[str, Any]:
    """The R4 SubscriptionStatus (``backport-subscription-status-r4`` Parameters)."""
    params: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": f"{base}/Subscription/{sub_id}"}},
        {"name": "topic", "valueCanonical": topic},
        {"name": "status", "valueCode": status},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(events_since)},
    ]
    for e in events:
        part: list[dict[str, Any]] = [{"name": "event-number", "valueString": str(e.number)},
                                      {"name": "timestamp", "valueInstant": instant(e.occurred)}]
        if content != "empty":
            part.append({"name": "focus", "valueReference": {"reference": f"{base}/{e.focus}"}})
        params.append({"name": "notification-event", "part": part})
    if error:
        params.append({"name": "error", "valueCodeableConcept": {"text": error}})
    return {"resourceType": "Parameters", "id": str(uuid.uuid4()), "meta": {"profile": [STATUS_PROFILE]},
            "parameter": params}


_METHOD = {"create": ("POST", "201"), "update": ("PUT", "200"), "delete": ("DELETE", "204")}


def notification_bundle(base: str, sub_id: str, topic: str, status: str, kind: str, events_since: int,
                        events: list[Event], content: str, now: datetime, error: str | None = None) -> dict[str, Any]:
    """A notification Bundle: type ``history``, the SubscriptionStatus first, then per event (unless
    ``empty``) the focus: its id only (``id-only``: fullUrl, request and response, no resource), or
    the resource as the subscriber may see it (``full-resource``)."""
    status_entry = {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": status_parameters(base, sub_id, topic, status, kind, events_since, events, content, error),
        "request": {"method": "GET", "url": f"Subscription/{sub_id}/$status"},
        "response": {"status": "200"},
    }
    entries = [status_entry]
    if content != "empty":
        for e in events:
            method, code = _METHOD[e.action]
            entry: dict[str, Any] = {"fullUrl": f"{base}/{e.focus}", "request": {"method": method, "url": e.focus},
                                     "response": {"status": code}}
            if content == "full-resource" and e.resource is not None:
                entry["resource"] = e.resource
            entries.append(entry)
    return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "history", "timestamp": instant(now),
            "entry": entries}


def owner_extension(owner: str) -> dict[str, Any]:
    return {"url": OWNER_EXT, "valueString": owner}


def owner_of(subscription: dict[str, Any] | None) -> str | None:
    for e in _ext(subscription, OWNER_EXT):
        if isinstance(e.get("valueString"), str):
            return str(e["valueString"])
    return None


def with_owner(subscription: dict[str, Any], owner: str) -> dict[str, Any]:
    """A copy of ``subscription`` whose owner extension names ``owner`` (any other owner dropped)."""
    out = dict(subscription)
    others = [e for e in out.get("extension") or () if not (isinstance(e, dict) and e.get("url") == OWNER_EXT)]
    out["extension"] = [*others, owner_extension(owner)]
    return out
