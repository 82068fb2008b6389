"""A small neighbourhood with an enrolled heart-failure patient, served with the pages, for the web tests."""

from __future__ import annotations

import socket
import sys
import threading
import time as timer
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))  # engine_world: the shared test neighbourhood

from web_world import PID, START  # noqa: E402


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    from engine_world import HEART_FAILURE, add_patient, add_team

    from careflow.access.principal import SYSTEM
    from careflow.api.app import create_app
    from careflow.auth.local import LocalIssuer
    from careflow.auth.tokens import TokenVerifier
    from careflow.engine import enrolment, events
    from careflow.engine.sweep import sweep
    from careflow.programs.loader import load_directory
    from careflow.region.consent import sharing_consent
    from careflow.store.database import make_engine, upgrade
    from careflow.store.sql import SqlRepository

    url = f"sqlite:///{tmp_path / 'web.db'}"
    upgrade(url)
    repo = SqlRepository(make_engine(url))
    programs = {k: p for k, p in load_directory(None).items() if k == "heart-failure"}
    roles = add_team(repo)
    add_patient(repo, PID, conditions=[HEART_FAILURE], onset=START - timedelta(days=400), gp_role=roles["gp"][0])
    with repo.unit_of_work(SYSTEM) as uow:
        uow.create_if_absent(sharing_consent(resource_id="consent-web", patient_ref=f"Patient/{PID}",
                                             gp_ref=f"PractitionerRole/{roles['gp'][0]}", given=START - timedelta(days=30)))
    events.install(repo)
    enrolment.enrol(repo, programs, [PID], START)
    sweep(repo, programs, datetime.combine(START, time(6), tzinfo=timezone.utc))
    issuer = LocalIssuer(tmp_path / "issuer-keys.json")
    clock = [datetime.combine(START + timedelta(days=2), time(9), tzinfo=timezone.utc)]  # the server's day
    app = create_app(repo, programs, auth=TokenVerifier([issuer.trusted()]), now=lambda: clock[0])
    app.state.local_issuer = issuer
    yield {"app": app, "repo": repo, "programs": programs, "issuer": issuer, "roles": roles, "clock": clock}
    repo.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(world: dict[str, Any]) -> Any:
    import uvicorn

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(world["app"], host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = timer.monotonic() + 30
    while not srv.started and timer.monotonic() < deadline:
        timer.sleep(0.05)
    assert srv.started, "the test server did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)
