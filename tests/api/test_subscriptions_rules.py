"""The pure parts of Subscriptions: reading a Subscription, matching, the notification shapes,
the back-off schedule, the kept principal, the detached signature."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jwt
import pytest

from careflow.access.principal import Principal, Scope
from careflow.access.rules import write_problem
from careflow.auth.notification_keys import NotificationSigner, verify
from careflow.engine import endpoints, subscriptions
from careflow.fhir import backport
from careflow.fhir.r4_schema import r4_errors

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def sub(filters: list[str], topic: str = backport.TASK_TOPIC, **channel: Any) -> dict[str, Any]:
    return {"resourceType": "Subscription", "status": "requested", "reason": "r", "criteria": topic,
            "_criteria": {"extension": [{"url": backport.FILTER_EXT, "valueString": f} for f in filters]},
            "channel": {"type": "rest-hook", "endpoint": "https://gp.example/hook", **channel}}


def task(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Task", "status": "requested", "intent": "order", "for": {"reference": "Patient/p1"},
            "owner": {"reference": "PractitionerRole/nurse1"}, **extra}


def no_team(_ref: str) -> str | None:
    return None


def test_defaults_id_only_no_heartbeat_and_the_filters_are_read() -> None:
    spec = backport.parse(sub(["Task?patient=Patient/p1,Patient/p2", "owner=https://x/fhir/PractitionerRole/nurse1"]))
    assert spec.content == "id-only" and spec.heartbeat is None and spec.rtype == "Task"
    assert spec.filters == (("patient", frozenset({"Patient/p1", "Patient/p2"})),
                            ("owner", frozenset({"PractitionerRole/nurse1"})))


def test_patient_owner_and_care_team_filters_all_must_hold() -> None:
    by_patient = backport.parse(sub(["Task?patient=Patient/p1"]))
    assert backport.matches(by_patient, task(), no_team)
    assert not backport.matches(by_patient, task(**{"for": {"reference": "Patient/p2"}}), no_team)
    assert not backport.matches(by_patient, {"resourceType": "CarePlan", "subject": {"reference": "Patient/p1"}}, no_team)
    both = backport.parse(sub(["Task?patient=Patient/p1&owner=PractitionerRole/gp1"]))
    assert not backport.matches(both, task(), no_team)
    assert backport.matches(both, task(owner={"reference": "PractitionerRole/gp1"}), no_team)
    team = backport.parse(sub(["Task?care-team=CareTeam/ct-p1"]))
    teams = {"CareTeam/ct-p1": "Patient/p1"}
    assert backport.matches(team, task(), teams.get)  # a Task of the team's patient
    assert backport.matches(team, task(**{"for": {"reference": "Patient/p9"}}, owner={"reference": "CareTeam/ct-p1"}),
                            teams.get)  # a Task the team owns
    assert not backport.matches(team, task(**{"for": {"reference": "Patient/p9"}}), teams.get)
    plans = backport.parse(sub(["CarePlan?care-team=CareTeam/ct-p9"], backport.CAREPLAN_TOPIC))
    plan = {"resourceType": "CarePlan", "subject": {"reference": "Patient/p1"}, "careTeam": [{"reference": "CareTeam/ct-p9"}]}
    assert backport.matches(plans, plan, no_team)


@pytest.mark.parametrize("body, says", [
    (sub([], topic="https://careflow.dev/fhir/SubscriptionTopic/everything"), "topics"),
    (sub(["CarePlan?owner=PractitionerRole/x"], backport.CAREPLAN_TOPIC), "not offered"),
    (sub(["Task?patient=p1"]), "references"),
    (sub(["Task?"]), "names no filter"),
    (sub([], endpoint="ftp://gp.example/x"), "https"),
    (sub([], endpoint="http://10.0.0.1/hook"), "https"),
    (sub([], header=["Authorization: Bearer secret"]), "X-Careflow-Signature"),
    (sub([], extension=[{"url": backport.HEARTBEAT_EXT, "valueUnsignedInt": 0}]), "heartbeat"),
    (sub([], extension=[{"url": backport.MAX_COUNT_EXT, "valuePositiveInt": 5000}]), "max-count"),
])
def test_what_careflow_cannot_serve_says_what_to_change(body: dict[str, Any], says: str) -> None:
    with pytest.raises(backport.SubscriptionProblem, match=says):
        backport.parse(body)


def test_the_end_is_read() -> None:
    assert backport.parse({**sub([]), "end": "2026-03-02T10:00:00Z"}).end == NOW + timedelta(hours=1)


def test_http_only_to_this_machine() -> None:
    assert backport.parse(sub([], endpoint="http://127.0.0.1:9/hook")).endpoint == "http://127.0.0.1:9/hook"


@pytest.mark.parametrize("content", backport.CONTENTS)
def test_notification_bundles_are_valid_r4_for_every_content(content: str) -> None:
    events = [backport.Event(1, NOW, "Task/t1", "create", task(id="t1")),
              backport.Event(2, NOW, "Task/t1", "delete")]
    bundle = backport.notification_bundle("https://cf/fhir", "s1", backport.TASK_TOPIC, "active",
                                          "event-notification", 2, events, content, NOW)
    assert r4_errors(bundle) == []
    assert bundle["type"] == "history"
    status = bundle["entry"][0]["resource"]
    assert status["meta"]["profile"] == [backport.STATUS_PROFILE]
    focus = [p for e in status["parameter"] if e["name"] == "notification-event" for p in e["part"] if p["name"] == "focus"]
    assert len(focus) == (0 if content == "empty" else 2)
    assert len(bundle["entry"]) == (1 if content == "empty" else 3)
    assert ("resource" in bundle["entry"][1]) == (content == "full-resource") if content != "empty" else True
    if content != "empty":
        assert [e["request"]["method"] for e in bundle["entry"][1:]] == ["POST", "DELETE"]


def test_backoff_doubles_from_ten_seconds_to_an_hour() -> None:
    waits = [subscriptions.backoff(n) for n in range(1, 12)]
    assert waits[:4] == [timedelta(seconds=s) for s in (10, 20, 40, 80)]
    assert waits[-1] == timedelta(hours=1) and waits == sorted(waits)


def test_the_kept_principal_comes_back_the_same() -> None:
    p = Principal("practitioner", "PractitionerRole/n", acts_as=("PractitionerRole/n", "Practitioner/p"),
                  discipline="home-nurse", scopes=(Scope("user", "Task", frozenset("rs"), (("status", "ready"),)),),
                  client_id="gp-app", organizations=("Organization/o",))
    assert subscriptions.principal_from(subscriptions.principal_json(p)) == p


def test_only_the_owner_changes_a_subscription() -> None:
    from careflow.access.policy import load_policy

    policy = load_policy()
    nurse = Principal("practitioner", "PractitionerRole/n", acts_as=("PractitionerRole/n",), discipline="home-nurse")
    other = Principal("practitioner", "PractitionerRole/o", acts_as=("PractitionerRole/o",), discipline="gp")
    mine = backport.with_owner(sub([]), nurse.id)
    assert write_problem(nurse, "create", "Subscription", None, mine, policy) is None
    assert write_problem(nurse, "update", "Subscription", mine, mine, policy) is None
    assert write_problem(other, "update", "Subscription", mine, mine, policy) is not None
    assert write_problem(other, "delete", "Subscription", mine, None, policy) is not None
    assert backport.owner_of(backport.with_owner(mine, other.id)) == other.id  # one owner, the last stamp


def test_the_detached_signature_verifies_and_rotation_keeps_the_old_key_published(tmp_path: Path) -> None:
    signer = NotificationSigner(tmp_path / "k.json")
    body = b'{"resourceType":"Bundle"}'
    first = signer.sign(body)
    assert first.count(".") == 2 and first.split(".")[1] == ""
    assert verify(body, first, signer.public_jwks())["kid"]
    signer.keys.rotate()
    second = signer.sign(body)
    jwks = signer.public_jwks()
    assert verify(body, first, jwks)["kid"] != verify(body, second, jwks)["kid"]
    with pytest.raises(jwt.PyJWTError):
        verify(body + b" ", second, jwks)


def test_an_address_in_the_resolvers_other_spellings_is_read_as_that_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(endpoints.ENV_PRIVATE_ENDPOINTS, "")
    for private in ("https://127.1/x", "https://0x7f000001/x", "https://2130706433/x", "https://0/x", "https://10.1/x"):
        assert endpoints.literal_problem(private), private
    for public in ("https://134744072/x", "https://8.8.8.8./x", "https://cafe/x", "https://gp.example/x", "https://0.example/x"):
        assert endpoints.literal_problem(public) is None, public  # names wait for DNS at each delivery
