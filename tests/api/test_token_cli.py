"""``careflow token`` mints tokens a server trusts; ``--insecure-no-auth`` never leaves loopback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from careflow.access.principal import SYSTEM
from careflow.api.bearer import StoreDirectory
from careflow.api.server import InsecureBindRefused, serve
from careflow.auth.identity import PrincipalBuilder
from careflow.auth.local import LocalIssuer
from careflow.auth.tokens import TokenVerifier
from careflow.naming import CARE_ROLE_SYSTEM
from careflow.store.database import open_repository

ROOT = Path(__file__).resolve().parents[2]


def _careflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "careflow.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_token_command_for_a_role_a_patient_and_the_system(tmp_path: Path) -> None:
    import os

    db = f"sqlite:///{tmp_path / 'c.db'}"
    repo = open_repository(db)
    with repo.unit_of_work(SYSTEM) as uow:
        for rid, code in (("b-gp", "gp"), ("a-gp", "gp"), ("n1", "home-nurse")):
            uow.update({"resourceType": "PractitionerRole", "id": rid, "active": True,
                        "code": [{"coding": [{"system": CARE_ROLE_SYSTEM, "code": code}]}]})
        uow.update({"resourceType": "Patient", "id": "p1"})
    keys = tmp_path / "keys.json"
    env = {**os.environ, "CAREFLOW_AUTH_LOCAL_KEYS": str(keys), "CAREFLOW_DATABASE_URL": db}
    verifier = TokenVerifier([LocalIssuer(keys).trusted()])
    builder = PrincipalBuilder(StoreDirectory(repo))

    def principal(*args: str):  # type: ignore[no-untyped-def]
        out = _careflow("token", *args, env=env)
        assert out.returncode == 0, out.stderr
        return builder.build(verifier.verify(out.stdout.strip()))

    gp = principal("--as", "gp")
    assert (gp.kind, gp.id, gp.discipline) == ("practitioner", "PractitionerRole/a-gp", "gp")  # first by id
    nurse = principal("--as", "PractitionerRole/n1", "--scope", "user/Task.rs", "--minutes", "5")
    assert [s.text() for s in nurse.scopes] == ["user/Task.rs"]
    assert principal("--as", "Patient/p1").patient == "p1"
    assert principal("--as", "system").kind == "system"
    assert principal("--as", "auditor").kind == "auditor"
    old = _careflow("token", "--as", "system", env=env).stdout.strip()
    assert _careflow("token", "--rotate-key", env=env).returncode == 0
    TokenVerifier([LocalIssuer(keys).trusted()]).verify(old)  # overlap: the previous key still verifies
    for bad in (["--as", "surgeon"], ["--as", "PractitionerRole/nobody"], ["--as", "system", "--scope", "openid"]):
        out = _careflow("token", *bad, env=env)
        assert out.returncode == 1 and out.stderr.startswith("careflow: error:") and "Traceback" not in out.stderr
    repo.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "example.invalid", "::"])
def test_insecure_mode_refuses_anything_but_loopback(host: str) -> None:
    with pytest.raises(InsecureBindRefused):
        serve("sqlite:///unused.db", host, 1, insecure_no_auth=True)


def test_a_server_with_no_issuer_does_not_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CAREFLOW_AUTH_ISSUER", "CAREFLOW_AUTH_LOCAL_ISSUER", "CAREFLOW_AUTH_JWKS_URL", "CAREFLOW_AUTH_JWKS_FILE"):
        monkeypatch.delenv(name, raising=False)
    from careflow.api.server import build_app
    from careflow.auth.settings import AuthConfigError

    with pytest.raises(AuthConfigError, match="no token issuer"):
        build_app(f"sqlite:///{tmp_path / 'x.db'}")
