"""serve()'s setup: programmes are published as PlanDefinition/ActivityDefinition, once."""

from __future__ import annotations

from fastapi.testclient import TestClient

from careflow.api.server import build_app, publish_programs
from careflow.store.memory import MemoryRepository


def test_publish_is_idempotent(programs):
    repo = MemoryRepository()
    first = publish_programs(repo, programs)
    assert first > len(programs)  # a PlanDefinition plus ActivityDefinitions per programme
    assert publish_programs(repo, programs) == 0  # unchanged content: no new versions
    total, _ = repo.history()
    assert total == first


def test_build_app_opens_the_store_and_serves_the_programmes(tmp_path, served_by_local_issuer):
    app = build_app(f"sqlite:///{tmp_path / 'serve.db'}")
    with TestClient(app, headers=served_by_local_issuer) as client:
        pd = client.get("/fhir/PlanDefinition/copd")
        assert pd.status_code == 200 and pd.json()["url"].endswith("/PlanDefinition/copd")
        found = client.get("/fhir/ActivityDefinition", params={"url:below": pd.json()["url"].rsplit("/PlanDefinition/", 1)[0]})
        assert found.status_code == 200 and found.json()["total"] > 0
