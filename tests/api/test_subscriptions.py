"""Subscriptions (R5 Backport IG on R4), each guarantee against a real local webhook receiver.

The receiver is an http.server thread (tests/api/subscription_receiver.py) that goes down and comes
back; delivery runs as :class:`careflow.engine.subscriptions.Notifier` rounds with an injected clock,
so a day of retries takes no waiting. Memory, SQLite and PostgreSQL (the ``repo`` fixture).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import jwt
import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from access_world import GP, NURSE, OUTSIDER, consent, directory, load, patient_resources  # noqa: E402
from subscription_receiver import (  # noqa: E402
    Receiver,
    event_focuses,
    event_numbers,
    notification_type,
    param,
    status_of,
)

from careflow.access.principal import SYSTEM, Principal  # noqa: E402
from careflow.api.app import create_app  # noqa: E402
from careflow.api.errors import Unauthenticated  # noqa: E402
from careflow.auth.notification_keys import SIGNATURE_HEADER, NotificationSigner, verify  # noqa: E402
from careflow.engine import endpoints, subscriptions  # noqa: E402
from careflow.fhir import backport  # noqa: E402
from careflow.fhir.r4_schema import r4_errors  # noqa: E402
from careflow.store.subscriptions import ledger_for  # noqa: E402

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
CALLERS = {"nurse": NURSE, "gp": GP, "outsider": OUTSIDER}


class ByToken:
    """``Authorization: Bearer nurse`` is the nurse, and so on (the token checks have their own tests)."""

    def authenticate(self, authorization: str | None) -> Principal:
        who = (authorization or "").removeprefix("Bearer ").strip()
        if who not in CALLERS:
            raise Unauthenticated("unknown test caller")
        return CALLERS[who]


@dataclass
class World:
    repo: Any
    client: TestClient
    receiver: Receiver
    notifier: subscriptions.Notifier
    now: datetime

    def round(self, advance: timedelta = timedelta(0)) -> subscriptions.Round:
        self.now += advance
        return self.notifier.run_once(self.now)

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {who}"}

    def subscribe(self, who: str = "nurse", filters: tuple[str, ...] = ("Task?patient=Patient/p1",), *,
                  topic: str = backport.TASK_TOPIC, content: str | None = None, heartbeat: int | None = None,
                  max_count: int | None = None) -> str:
        r = self.client.post("/fhir/Subscription", json=subscription(self.receiver.url, filters, topic=topic,
                                                                    content=content, heartbeat=heartbeat,
                                                                    max_count=max_count), headers=self.as_(who))
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def state(self, sid: str) -> Any:
        return ledger_for(self.repo).get(sid)

    def received_events(self) -> list[int]:
        return [n for b in self.receiver.of_type("event-notification") for n in event_numbers(b)]


def subscription(endpoint: str, filters: tuple[str, ...], *, topic: str = backport.TASK_TOPIC,
                 content: str | None = None, heartbeat: int | None = None, max_count: int | None = None,
                 status: str = "requested") -> dict[str, Any]:
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json"}
    if content:
        channel["_payload"] = {"extension": [{"url": backport.PAYLOAD_EXT, "valueCode": content}]}
    ext = []
    if heartbeat:
        ext.append({"url": backport.HEARTBEAT_EXT, "valueUnsignedInt": heartbeat})
    if max_count:
        ext.append({"url": backport.MAX_COUNT_EXT, "valuePositiveInt": max_count})
    if ext:
        channel["extension"] = ext
    return {"resourceType": "Subscription", "meta": {"profile": [backport.SUBSCRIPTION_PROFILE]}, "status": status,
            "reason": "tell the GP system about the care plan", "criteria": topic,
            "_criteria": {"extension": [{"url": backport.FILTER_EXT, "valueString": f} for f in filters]},
            "channel": channel}


def touch(repo: Any, rtype: str, rid: str, text: str) -> None:
    """A change to a Task or CarePlan, written like the engine writes (the listener sees every write)."""
    with repo.unit_of_work(SYSTEM) as uow:
        current = uow.read(rtype, rid)
        resource = dict(current.resource or {})
        resource["description"] = text
        uow.update(resource, if_match=current.version)


@pytest.fixture
def world(repo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv(endpoints.ENV_PRIVATE_ENDPOINTS, "127.0.0.1/32")  # the receiver runs on this machine
    subscriptions.install(repo)
    load(repo, directory() + patient_resources("p1") + patient_resources("p2"))
    signer = NotificationSigner(tmp_path / "notification-keys.json")
    app = create_app(repo, auth=ByToken())
    app.state.notification_signer = signer
    receiver = Receiver().start()
    notifier = subscriptions.Notifier(repo, base="http://testserver/fhir", signer=signer)
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers.update(JSON)
        yield World(repo, c, receiver, notifier, NOW)
    receiver.stop()


def test_activation_handshakes_then_the_subscription_is_active_and_valid_r4(world: World) -> None:
    sid = world.subscribe()
    stored = world.client.get(f"/fhir/Subscription/{sid}", headers=world.as_("nurse")).json()
    assert stored["status"] == "requested" and backport.owner_of(stored) == NURSE.id
    world.round()
    [handshake] = world.receiver.bundles()
    assert handshake["type"] == "history" and notification_type(handshake) == "handshake"
    assert param(status_of(handshake), "events-since-subscription-start") == "0"
    assert param(status_of(handshake), "topic") == backport.TASK_TOPIC
    stored = world.client.get(f"/fhir/Subscription/{sid}", headers=world.as_("nurse")).json()
    assert stored["status"] == "active" and world.state(sid).status == "active"
    assert r4_errors(stored) == [] and r4_errors(handshake) == []


def test_a_receiver_that_was_down_gets_every_event_exactly_once_after_dedup(world: World) -> None:
    sid = world.subscribe(max_count=2)
    world.round()  # handshake
    world.receiver.stop()
    for i in range(5):
        touch(world.repo, "Task", "task-p1", f"step {i}")
        touch(world.repo, "Task", "task-p2", f"other patient {i}")  # not this subscription's
    r = world.round()
    assert r.failed == 1 and world.state(sid).failures == 1
    first_retry = world.state(sid).next_attempt
    assert first_retry == world.now + subscriptions.FIRST_RETRY
    assert world.round(timedelta(seconds=5)).failed == 0  # not due yet: nothing is attempted
    world.round(first_retry - world.now)
    assert world.state(sid).failures == 2
    world.receiver.start()
    world.receiver.fail_after_storing = 1  # keeps the first batch, then answers 500: it comes again
    world.round(world.state(sid).next_attempt - world.now)
    world.round(world.state(sid).next_attempt - world.now)
    touch(world.repo, "Task", "task-p1", "step after")
    world.round(timedelta(seconds=1))
    got = world.received_events()
    assert len(got) > len(set(got))  # a batch arrived twice: de-duplication by number is needed
    assert sorted(set(got)) == [1, 2, 3, 4, 5, 6]  # every event, numbers without gaps
    assert world.state(sid).events == 6 and world.state(sid).delivered == 6
    bundles = world.receiver.of_type("event-notification")
    assert all(f == "http://testserver/fhir/Task/task-p1" for b in bundles for f in event_focuses(b))
    assert all(len(event_numbers(b)) <= 2 for b in bundles)  # backport-max-count
    assert param(status_of(bundles[-1]), "events-since-subscription-start") == "6"
    assert all(r4_errors(b) == [] for b in world.receiver.bundles())


def test_events_replays_what_a_receiver_missed_and_status_counts_them(world: World) -> None:
    sid = world.subscribe()
    world.round()
    for i in range(4):
        touch(world.repo, "Task", "task-p1", f"step {i}")
    world.round()
    r = world.client.get(f"/fhir/Subscription/{sid}/$events?eventsSinceNumber=2&eventsUntilNumber=3",
                         headers=world.as_("nurse"))
    assert r.status_code == 200, r.text
    replay = r.json()
    assert replay["type"] == "history" and notification_type(replay) == "query-event"
    assert event_numbers(replay) == [2, 3] and r4_errors(replay) == []
    assert [e["request"]["url"] for e in replay["entry"][1:]] == ["Task/task-p1", "Task/task-p1"]
    posted = world.client.post(f"/fhir/Subscription/{sid}/$events", headers=world.as_("nurse"), json={
        "resourceType": "Parameters", "parameter": [{"name": "eventsSinceNumber", "valueString": "4"}]})
    assert event_numbers(posted.json()) == [4]
    status = world.client.get(f"/fhir/Subscription/{sid}/$status", headers=world.as_("nurse")).json()
    assert status["type"] == "searchset" and r4_errors(status) == []
    parameters = status["entry"][0]["resource"]
    assert param(parameters, "type") == "query-status" and param(parameters, "status") == "active"
    assert param(parameters, "events-since-subscription-start") == "4"
    # someone else's Subscription answers as absent
    assert world.client.get(f"/fhir/Subscription/{sid}/$status", headers=world.as_("outsider")).status_code == 404
    assert world.client.get(f"/fhir/Subscription/{sid}/$events", headers=world.as_("outsider")).status_code == 404
    bad = world.client.get(f"/fhir/Subscription/{sid}/$events?eventsSinceNumber=two", headers=world.as_("nurse"))
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"


def test_every_notification_is_signed_with_a_published_key(world: World) -> None:
    world.subscribe()
    world.round()
    touch(world.repo, "Task", "task-p1", "signed")
    world.round()
    jwks = world.client.get("/.well-known/jwks.json", headers={"Authorization": ""}).json()
    assert jwks["keys"] and all("d" not in k for k in jwks["keys"])
    assert len(world.receiver.received) == 2
    for body, headers in world.receiver.received:
        assert verify(body, headers[SIGNATURE_HEADER.lower()], jwks)["alg"] == "ES256"
        with pytest.raises(jwt.PyJWTError):
            verify(body.replace(b"history", b"batch"), headers[SIGNATURE_HEADER.lower()], jwks)


def test_id_only_is_the_default_and_carries_no_resource_content(world: World) -> None:
    world.subscribe()
    world.round()
    touch(world.repo, "Task", "task-p1", "a private note about the patient")
    world.round()
    [bundle] = world.receiver.of_type("event-notification")
    body, _ = world.receiver.received[-1]
    assert b"private note" not in body and b"Famp1" not in body
    assert [set(e) for e in bundle["entry"][1:]] == [{"fullUrl", "request", "response"}]
    assert bundle["entry"][1]["fullUrl"] == "http://testserver/fhir/Task/task-p1"


def test_full_resource_content_sends_the_resource_as_the_subscriber_sees_it(world: World) -> None:
    world.subscribe(content="full-resource", topic=backport.CAREPLAN_TOPIC, filters=("CarePlan?care-team=CareTeam/ct-p1",))
    world.round()
    touch(world.repo, "CarePlan", "cp-p1", "plan reviewed")
    touch(world.repo, "Task", "task-p1", "not this topic")
    world.round()
    [bundle] = world.receiver.of_type("event-notification")
    assert bundle["entry"][1]["resource"]["description"] == "plan reviewed"
    assert r4_errors(bundle) == []


def test_a_withdrawn_consent_stops_delivery_at_delivery_time(world: World) -> None:
    nurse_sub = world.subscribe("nurse")
    gp_sub = world.subscribe("gp")  # the GP of the global medical file sees their patient regardless
    world.round()
    touch(world.repo, "Task", "task-p1", "before")
    world.round()
    load(world.repo, [consent("p1", status="inactive")])
    touch(world.repo, "Task", "task-p1", "while withdrawn")
    r = world.round()
    assert r.withheld == 1 and r.sent == 1
    rows = ledger_for(world.repo).events(nurse_sub, 1)
    assert [(x.number, x.state) for x in rows] == [(1, "sent"), (2, "withheld")]  # the number stays taken
    replay = world.client.get(f"/fhir/Subscription/{nurse_sub}/$events", headers=world.as_("nurse")).json()
    assert event_numbers(replay) == []  # nothing of the patient while the consent is withdrawn, not even event 1
    assert param(status_of(replay), "events-since-subscription-start") == "2"
    load(world.repo, [consent("p1")])
    touch(world.repo, "Task", "task-p1", "consent again")
    world.round()

    def numbers_for(sid: str) -> list[int]:
        return [n for b in world.receiver.of_type("event-notification")
                if param(status_of(b), "subscription")["reference"].endswith(sid) for n in event_numbers(b)]

    assert numbers_for(nurse_sub) == [1, 3]
    assert numbers_for(gp_sub) == [1, 2, 3]


def test_retries_back_off_for_24_hours_then_the_subscription_is_in_error(world: World) -> None:
    world.receiver.stop()
    sid = world.subscribe()
    attempts: list[datetime] = []
    while True:
        world.round()
        state = world.state(sid)
        if state.status == "error":
            break
        assert state.status == "requested" and state.failures == len(attempts) + 1
        attempts.append(world.now)
        world.now = state.next_attempt
        assert len(attempts) < 200
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert gaps[:3] == [timedelta(seconds=10), timedelta(seconds=20), timedelta(seconds=40)]
    assert max(gaps) == subscriptions.LONGEST_RETRY
    assert world.now - attempts[0] >= subscriptions.RETRY_WINDOW
    assert attempts[-1] - attempts[0] < subscriptions.RETRY_WINDOW  # every attempt inside the window was made
    stored = world.client.get(f"/fhir/Subscription/{sid}", headers=world.as_("nurse")).json()
    assert stored["status"] == "error" and "no answer" in stored["error"] and r4_errors(stored) == []
    status = world.client.get(f"/fhir/Subscription/{sid}/$status", headers=world.as_("nurse")).json()
    assert param(status["entry"][0]["resource"], "status") == "error"
    # nothing more is tried; the subscriber asks again once its endpoint is back
    assert world.round(timedelta(days=1)).failed == 0
    world.receiver.start()
    stored["status"] = "requested"
    assert world.client.put(f"/fhir/Subscription/{sid}", json=stored, headers=world.as_("nurse")).status_code == 200
    world.round()
    assert world.state(sid).status == "active" and len(world.receiver.of_type("handshake")) == 1


def test_an_active_subscription_whose_receiver_stays_down_goes_to_error(world: World) -> None:
    sid = world.subscribe()
    world.round()
    world.receiver.stop()
    touch(world.repo, "Task", "task-p1", "lost receiver")
    start = world.now
    while world.state(sid).status == "active":
        world.round()
        if world.state(sid).next_attempt:
            world.now = world.state(sid).next_attempt
    assert world.state(sid).status == "error" and world.now - start >= subscriptions.RETRY_WINDOW
    assert world.state(sid).delivered == 0  # the event is kept: $events still replays it
    replay = world.client.get(f"/fhir/Subscription/{sid}/$events", headers=world.as_("nurse")).json()
    assert event_numbers(replay) == [1]


def test_nothing_is_sent_after_the_subscription_ends(world: World) -> None:
    sid = world.subscribe()
    world.round()
    mine = world.client.get(f"/fhir/Subscription/{sid}", headers=world.as_("nurse")).json()
    mine["end"] = "2026-03-02T10:00:00Z"
    assert world.client.put(f"/fhir/Subscription/{sid}", json=mine, headers=world.as_("nurse")).status_code == 200
    touch(world.repo, "Task", "task-p1", "before the end")
    world.round(timedelta(minutes=1))
    touch(world.repo, "Task", "task-p1", "after the end")
    world.round(timedelta(hours=2))
    assert world.received_events() == [1] and world.state(sid).status == "off"
    assert world.client.get(f"/fhir/Subscription/{sid}", headers=world.as_("nurse")).json()["status"] == "off"


def test_heartbeats_when_nothing_else_was_sent(world: World) -> None:
    world.subscribe(heartbeat=60)
    world.round()
    world.round(timedelta(seconds=30))
    assert world.receiver.of_type("heartbeat") == []
    world.round(timedelta(seconds=31))
    [beat] = world.receiver.of_type("heartbeat")
    assert r4_errors(beat) == [] and len(beat["entry"]) == 1


def test_only_its_owner_changes_a_subscription_and_off_stops_delivery(world: World) -> None:
    sid = world.subscribe()
    world.round()
    mine = world.client.get(f"/fhir/Subscription/{sid}", headers=world.as_("nurse")).json()
    # someone else's Subscription (whose patients it watches, where it sends) is not theirs to see
    assert world.client.get(f"/fhir/Subscription/{sid}", headers=world.as_("outsider")).status_code == 404
    found = world.client.get("/fhir/Subscription?_total=accurate", headers=world.as_("outsider")).json()
    assert found["total"] == 0 and not found.get("entry")
    assert world.client.get("/fhir/Subscription", headers=world.as_("nurse")).json()["entry"][0]["resource"]["id"] == sid
    stolen = {**mine, "channel": {**mine["channel"], "endpoint": "https://elsewhere.example/hook"}}
    assert world.client.put(f"/fhir/Subscription/{sid}", json=stolen, headers=world.as_("outsider")).status_code in (403, 404, 409)
    # deleting what one cannot see deletes nothing (answered as for an absent resource)
    assert world.client.delete(f"/fhir/Subscription/{sid}", headers=world.as_("outsider")).status_code in (204, 404)
    assert world.client.get(f"/fhir/Subscription/{sid}", headers=world.as_("nurse")).json()["channel"] == mine["channel"]
    mine["status"] = "off"
    assert world.client.put(f"/fhir/Subscription/{sid}", json=mine, headers=world.as_("nurse")).status_code == 200
    touch(world.repo, "Task", "task-p1", "after off")
    world.round()
    assert world.receiver.of_type("event-notification") == [] and world.state(sid).status == "off"
    assert world.client.delete(f"/fhir/Subscription/{sid}", headers=world.as_("nurse")).status_code in (200, 204)
    world.round()
    assert world.state(sid) is None


@pytest.mark.parametrize("change, says", [
    (lambda s: s.update(criteria="Task?status=requested"), "topics"),
    (lambda s: s["_criteria"]["extension"][0].update(valueString="Task?code=x"), "not offered"),
    (lambda s: s["_criteria"]["extension"][0].update(valueString="CarePlan?patient=Patient/p1"), "about Task"),
    (lambda s: s["channel"].update(type="websocket"), "rest-hook"),
    (lambda s: s["channel"].update(endpoint="http://gp.example/hook"), "https"),
    (lambda s: s["channel"].update(_payload={"extension": [{"url": backport.PAYLOAD_EXT, "valueCode": "all"}]}),
     "payload-content"),
])
def test_a_subscription_careflow_cannot_serve_is_400_saying_why(world: World, change: Any, says: str) -> None:
    body = subscription(world.receiver.url, ("Task?patient=Patient/p1",))
    change(body)
    r = world.client.post("/fhir/Subscription", json=body, headers=world.as_("nurse"))
    assert r.status_code == 400, r.text
    assert r.json()["resourceType"] == "OperationOutcome" and says in r.text


@pytest.mark.parametrize("endpoint", ["https://10.1.2.3/hook", "https://169.254.169.254/latest", "https://[::1]/x",
                                      "http://localhost:5432/", "https://[::ffff:192.168.0.1]/x"])
def test_an_endpoint_at_a_private_address_is_refused(world: World, endpoint: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(endpoints.ENV_PRIVATE_ENDPOINTS, "")
    r = world.client.post("/fhir/Subscription", json=subscription(endpoint, ("Task?patient=Patient/p1",)),
                          headers=world.as_("nurse"))
    assert r.status_code == 400 and "private address" in r.text, r.text


def test_a_name_that_resolves_to_a_private_address_is_not_sent_to(world: World,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    sid = world.subscribe()  # allowed while the receiver's network is allowed
    monkeypatch.setenv(endpoints.ENV_PRIVATE_ENDPOINTS, "")
    world.round()
    assert world.receiver.received == [] and world.state(sid).status == "requested"
    status = world.client.get(f"/fhir/Subscription/{sid}/$status", headers=world.as_("nurse")).json()
    assert "private address" in str(status)
    monkeypatch.setenv(endpoints.ENV_PRIVATE_ENDPOINTS, "127.0.0.1/32")
    world.round(timedelta(minutes=5))
    assert world.state(sid).status == "active"


def test_the_checked_address_is_the_one_connected_to(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([[(0, 0, 0, "", ("93.184.216.34", 443))], [(0, 0, 0, "", ("10.0.0.1", 443))]])
    monkeypatch.setattr(endpoints.socket, "getaddrinfo", lambda *a, **k: next(answers))
    target = endpoints.resolve("https://gp.example:8443/hook?x=1")
    assert (target.url, target.host_header, target.server_name) == \
        ("https://93.184.216.34:8443/hook?x=1", "gp.example:8443", "gp.example")
    with pytest.raises(endpoints.EndpointRefused):
        endpoints.resolve("https://gp.example/hook")  # the second answer is private: refused, not followed


def test_the_capability_statement_names_the_topics_and_operations(world: World) -> None:
    cs = world.client.get("/fhir/metadata").json()
    [sub] = [r for r in cs["rest"][0]["resource"] if r["type"] == "Subscription"]
    assert {e["valueCanonical"] for e in sub["extension"]} == set(backport.TOPICS)
    assert {o["name"] for o in sub["operation"]} == {"status", "events"}
