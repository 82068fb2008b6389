"""Who is calling: every route refuses anonymous callers (generated from the route table), bad tokens
are 401 with a challenge, a valid token without the scope is 403, and the principal is built from
the token and the store."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from careflow.api.app import create_app
from careflow.api.security import DOCUMENTATION_PATHS, PUBLIC_PATHS
from careflow.auth.identity import PrincipalBuilder
from careflow.auth.keys import Discovery, RemoteKeySet, StaticKeySet
from careflow.auth.local import LOCAL_ISSUER, LocalIssuer
from careflow.auth.scopes import parse_scope, parse_scopes
from careflow.auth.settings import AuthConfigError, AuthSettings
from careflow.auth.tokens import TokenError, TokenVerifier, TrustedIssuer
from careflow.naming import CARE_ROLE_SYSTEM
from careflow.store.memory import MemoryRepository
from careflow.web.session import PREFIX as PAGES
from careflow.web.session import is_public as page_public

JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
PATH_VALUES = {"rtype": "Patient", "rid": "x", "vid": "1", "op": "$everything", "task_id": "x", "action": "accept", "patient_id": "x", "program_id": "x", "panel": "pyramid"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": LOCAL_ISSUER, "aud": "careflow-fhir", "iat": now, "exp": now + 600, "client_id": "careflow-cli",
            "sub": "t", "scope": "system/*.cruds", "jti": uuid.uuid4().hex, **extra}


def _world() -> MemoryRepository:
    repo = MemoryRepository()
    from careflow.access.principal import SYSTEM

    with repo.unit_of_work(SYSTEM) as uow:
        uow.update({"resourceType": "Organization", "id": "team1", "name": "Buurtteam"})
        uow.update({"resourceType": "Practitioner", "id": "p1", "active": True})
        uow.update({"resourceType": "PractitionerRole", "id": "gp1", "active": True,
                    "practitioner": {"reference": "Practitioner/p1"}, "organization": {"reference": "Organization/team1"},
                    "code": [{"coding": [{"system": CARE_ROLE_SYSTEM, "code": "gp"}]}]})
        uow.update({"resourceType": "PractitionerRole", "id": "old", "active": False,
                    "code": [{"coding": [{"system": CARE_ROLE_SYSTEM, "code": "pharmacist"}]}]})
        uow.update({"resourceType": "Patient", "id": "pat1"})
    return repo


@pytest.fixture
def world() -> MemoryRepository:
    return _world()


@pytest.fixture
def app_client(world: MemoryRepository, verifier: TokenVerifier) -> TestClient:
    c = TestClient(create_app(world, auth=verifier), raise_server_exceptions=False)
    c.headers.update(JSON)
    return c


# ------------------------------------------------------------------------------- the route table


def _flat_routes(routes: list[Any]) -> Iterator[Any]:
    """Every route, included routers opened (FastAPI >= 0.150 keeps an included router as one entry
    that yields its routes with their full paths; older versions list them flat)."""
    for route in routes:
        if hasattr(route, "effective_route_contexts"):
            yield from route.effective_route_contexts()
        else:
            yield route


def _route_cases() -> list[tuple[str, str, str]]:
    """(method, template, concrete path) for every route of the app, read from ``app.routes``."""
    app = create_app(MemoryRepository())
    cases = []
    for route in _flat_routes(list(app.routes)):
        path = getattr(route, "path", None)
        assert isinstance(path, str), f"a route this test cannot read: {route!r}"
        methods = sorted(getattr(route, "methods", None) or {"GET"})
        concrete = path
        for name, value in PATH_VALUES.items():
            concrete = concrete.replace("{" + name + "}", value)
        assert "{" not in concrete, f"a route with an unknown path parameter: {path}"
        for m in methods:
            if m != "HEAD":
                cases.append((m, path, concrete))
    return cases


ROUTES = _route_cases()


def test_the_route_table_is_read_whole() -> None:
    api_paths = {p for _m, p, _c in ROUTES}
    assert {"/fhir", "/fhir/{rtype}", "/fhir/{rtype}/{rid}", "/fhir/{rtype}/{rid}/_history/{vid}"} <= api_paths
    assert len(ROUTES) >= 18


@pytest.mark.parametrize("method, template, path", ROUTES, ids=[f"{m} {t}" for m, t, _ in ROUTES])
def test_every_route_refuses_an_anonymous_caller(method: str, template: str, path: str) -> None:
    client = TestClient(create_app(_world(), auth=TokenVerifier([LocalIssuer(Path("/nonexistent/k.json")).trusted()])),
                        raise_server_exceptions=False)
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        r = client.request(method, path, headers={**JSON, **headers}, content=b"{}" if method in ("POST", "PUT") else None,
                           follow_redirects=False)
        if path in PUBLIC_PATHS or path in DOCUMENTATION_PATHS:
            assert r.status_code in (200, 405), (method, path, r.status_code)
            continue
        if path.startswith(PAGES):  # the web pages: signing in is public, every other page sends you there
            if page_public(path):
                assert r.status_code in (200, 303, 404, 405, 422), (method, path, r.status_code)
            else:
                assert r.status_code == 303 and r.headers["location"].startswith(f"{PAGES}/login"), (method, path)
                bad = client.request(method, path, cookies={"careflow_session": "not-a-token"}, data={"version": "1"}
                                     if method == "POST" else None, follow_redirects=False)
                assert bad.status_code == 303 and "error=expired" in bad.headers["location"], (method, path, bad.status_code)
            continue
        assert r.status_code == 401, (method, path, headers, r.status_code, r.text[:200])
        assert r.headers["www-authenticate"].startswith("Bearer ")
        assert r.json()["resourceType"] == "OperationOutcome"
        if headers:
            assert "error=" in r.headers["www-authenticate"]


def test_an_unconfigured_app_serves_nobody() -> None:
    client = TestClient(create_app(MemoryRepository()), raise_server_exceptions=False)
    assert client.get("/fhir/Patient").status_code == 401
    assert client.get("/fhir/metadata").status_code == 200


# ------------------------------------------------------------------------------- bad tokens


def _expect_401(client: TestClient, token: str, why: str) -> None:
    r = client.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, (why, r.status_code, r.text)
    assert 'error="invalid_token"' in r.headers["www-authenticate"], why
    assert r.json()["resourceType"] == "OperationOutcome"


def test_a_good_token_is_accepted(app_client: TestClient, test_issuer: LocalIssuer) -> None:
    r = app_client.get("/fhir/Patient", headers={"Authorization": "Bearer " + test_issuer.mint(_claims())})
    assert r.status_code == 200


def test_bad_tokens_are_401(app_client: TestClient, test_issuer: LocalIssuer) -> None:
    key = test_issuer.keys()[-1]
    kid = key["kid"]
    now = int(time.time())
    # forged: same kid, another key
    other = ec.generate_private_key(ec.SECP256R1())
    _expect_401(app_client, jwt.encode(_claims(), other, algorithm="ES256", headers={"kid": kid}), "forged")
    # tampered payload of a genuine token
    good = test_issuer.mint(_claims())
    h, _p, sig = good.split(".")
    _expect_401(app_client, f"{h}.{_b64(json.dumps(_claims(scope='system/*.cruds', sub='evil')).encode())}.{sig}",
                "tampered")
    _expect_401(app_client, test_issuer.mint(_claims(exp=now - 3600, iat=now - 7200, nbf=now - 7200)), "expired")
    _expect_401(app_client, test_issuer.mint(_claims(nbf=now + 3600)), "not yet valid")
    _expect_401(app_client, test_issuer.mint(_claims(aud="someone-else")), "wrong audience")
    _expect_401(app_client, test_issuer.mint(_claims(iss="https://idp.invalid/realms/x")), "wrong issuer")
    _expect_401(app_client, test_issuer.mint(_claims(exp=None)), "no exp")
    # alg none, with and without a signature part
    unsigned = _unsigned({"alg": "none", "typ": "JWT", "kid": kid}, _claims())
    _expect_401(app_client, unsigned + ".", "alg none")
    _expect_401(app_client, unsigned + "." + _b64(b"x"), "alg none with junk signature")
    # HS256 keyed with the issuer's public key (the classic confusion)
    public_pem = ECAlgorithm(ECAlgorithm.SHA256).from_jwk(json.dumps(key)).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for secret in (public_pem, json.dumps(test_issuer.public_jwks()["keys"][-1]).encode()):
        signing = _unsigned({"alg": "HS256", "typ": "JWT", "kid": kid}, _claims())
        mac = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
        _expect_401(app_client, f"{signing}.{_b64(mac)}", "HS256 with the public key")
    # unknown kid, signed by a key nobody published
    _expect_401(app_client, jwt.encode(_claims(), other, algorithm="ES256", headers={"kid": "nobody"}), "unknown kid")
    _expect_401(app_client, "a.b.c", "garbage")


def test_token_without_a_known_user_is_401(app_client: TestClient, test_issuer: LocalIssuer) -> None:
    for claims, why in [(_claims(fhirUser="PractitionerRole/nobody", scope="user/*.rs"), "unknown role"),
                        (_claims(fhirUser="PractitionerRole/old", scope="user/*.rs"), "inactive role"),
                        (_claims(fhirUser="Device/d1", scope="user/*.rs"), "not a person"),
                        (_claims(client_id="someone", scope="system/*.rs"), "system scopes, unlisted client"),
                        (_claims(scope="user/*.rs"), "no fhirUser"),
                        (_claims(fhirUser='PractitionerRole/é"x', scope="user/*.rs"), "an id no header can carry")]:
        _expect_401(app_client, test_issuer.mint(claims), why)


def test_rotated_keys_overlap(tmp_path: Path) -> None:
    issuer = LocalIssuer(tmp_path / "keys.json")
    client = TestClient(create_app(_world(), auth=TokenVerifier([issuer.trusted()])), raise_server_exceptions=False)
    first = issuer.mint(_claims())
    assert client.get("/fhir/Patient", headers={"Authorization": f"Bearer {first}"}).status_code == 200
    issuer.rotate()  # while the server runs: its key set reloads the file for the new kid
    second = issuer.mint(_claims())
    assert jwt.get_unverified_header(second)["kid"] != jwt.get_unverified_header(first)["kid"]
    time.sleep(1.1)  # the key file is re-read at most once a second
    fresh = TokenVerifier([issuer.trusted()])
    for token in (first, second):
        fresh.verify(token)
    assert client.get("/fhir/Patient", headers={"Authorization": f"Bearer {second}"}).status_code == 200
    issuer.rotate()  # the first key is dropped now
    with pytest.raises(TokenError):
        TokenVerifier([issuer.trusted()]).verify(first)
    TokenVerifier([issuer.trusted()]).verify(second)


# ------------------------------------------------------------------------------- scopes and principals


def test_smart_scopes_parse() -> None:
    s = parse_scope("patient/Observation.rs?category=vital-signs")
    assert s is not None and s.context == "patient" and s.type == "Observation"
    assert s.interactions == frozenset("rs") and s.filter == (("category", "vital-signs"),)
    assert parse_scope("user/Task.rs").interactions == frozenset("rs")  # type: ignore[union-attr]
    assert parse_scope("system/*.cruds").interactions == frozenset("cruds")  # type: ignore[union-attr]
    assert parse_scope("user/Patient.read").interactions == frozenset("rs")  # type: ignore[union-attr]
    assert parse_scope("user/Patient.write").interactions == frozenset("cud")  # type: ignore[union-attr]
    assert parse_scope("patient/*.*").interactions == frozenset("cruds")  # type: ignore[union-attr]
    for bad in ("openid", "fhirUser", "launch/patient", "user/Task.sr", "user/Task.", "user/Task.x",
                "admin/Task.rs", "user/task.rs", "user/Task.read?status=x", "user/Task.rs?=x"):
        assert parse_scope(bad) is None, bad
    assert [x.text() for x in parse_scopes("openid fhirUser user/Task.rs user/Task.rs patient/*.read")] == [
        "user/Task.rs", "patient/*.rs"]


def _principal(world: MemoryRepository, test_issuer: LocalIssuer, **claims: Any) -> Any:
    from careflow.api.bearer import StoreDirectory

    verifier = TokenVerifier([test_issuer.trusted()])
    return PrincipalBuilder(StoreDirectory(world)).build(verifier.verify(test_issuer.mint(_claims(**claims))))


def test_principals_from_tokens(world: MemoryRepository, test_issuer: LocalIssuer) -> None:
    gp = _principal(world, test_issuer, fhirUser="https://fhir.example/fhir/PractitionerRole/gp1",
                    scope="openid fhirUser user/*.cruds system/*.cruds")
    assert (gp.kind, gp.id, gp.acts_as, gp.discipline, gp.organizations) == (
        "practitioner", "PractitionerRole/gp1", ("PractitionerRole/gp1", "Practitioner/p1"), "gp", ("Organization/team1",))
    assert [s.text() for s in gp.scopes] == ["user/*.cruds"]  # a user cannot borrow system scopes
    by_practitioner = _principal(world, test_issuer, fhirUser="Practitioner/p1", scope="user/*.rs")
    assert by_practitioner.id == "PractitionerRole/gp1"
    patient = _principal(world, test_issuer, fhirUser="Patient/pat1", scope="patient/*.rs")
    assert (patient.kind, patient.patient, patient.id) == ("patient", "pat1", "Patient/pat1")
    launched = _principal(world, test_issuer, patient="pat1", scope="patient/Observation.rs?category=vital-signs")
    assert launched.kind == "patient" and launched.scopes[0].filter == (("category", "vital-signs"),)
    system = _principal(world, test_issuer, scope="system/*.rs")
    assert (system.kind, system.id, system.client_id) == ("system", "system/careflow-cli", "careflow-cli")
    auditor = _principal(world, test_issuer, roles=["careflow-auditor"], scope="user/*.rs")
    assert auditor.kind == "auditor"


def test_scopes_decide_403_through_real_tokens(app_client: TestClient, test_issuer: LocalIssuer) -> None:
    token = test_issuer.mint(_claims(fhirUser="PractitionerRole/gp1", scope="user/Task.rs"))
    h = {"Authorization": f"Bearer {token}"}
    assert app_client.get("/fhir/Task", headers=h).status_code == 200
    r = app_client.post("/fhir/Task", headers=h, json={"resourceType": "Task", "status": "requested", "intent": "order"})
    assert r.status_code == 403 and 'error="insufficient_scope"' in r.headers["www-authenticate"]
    assert r.json()["resourceType"] == "OperationOutcome"
    assert app_client.get("/fhir/Patient", headers=h).status_code == 403


def test_smart_configuration_is_public_at_both_places(app_client: TestClient) -> None:
    for path in ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
        r = app_client.get(path, headers={"Authorization": ""})
        assert r.status_code == 200
        doc = r.json()
        assert "patient/Observation.rs?category=vital-signs" in doc["scopes_supported"]
        assert "permission-v2" in doc["capabilities"] and doc["issuer"] == LOCAL_ISSUER


# ------------------------------------------------------------------------------- production set-up


class _Idp(BaseHTTPRequestHandler):
    documents: dict[str, Any] = {}
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.hits.append(self.path)
        doc = self.documents.get(self.path)
        body = json.dumps(doc).encode() if doc is not None else b"{}"
        self.send_response(200 if doc is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def idp() -> Iterator[tuple[str, type[_Idp]]]:
    """An OpenID Connect provider's discovery and JWKS documents, on 127.0.0.1 only."""
    handler = type("Idp", (_Idp,), {"documents": {}, "hits": []})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/realms/region", handler
    finally:
        server.shutdown()
        server.server_close()


def _rsa_jwk(kid: str) -> tuple[Any, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return key, jwk


def test_openid_discovery_jwks_and_rotation(idp: tuple[str, type[_Idp]], world: MemoryRepository) -> None:
    issuer, handler = idp
    k1, jwk1 = _rsa_jwk("k1")
    k2, jwk2 = _rsa_jwk("k2")
    handler.documents["/realms/region/.well-known/openid-configuration"] = {
        "issuer": issuer, "jwks_uri": issuer + "/certs", "token_endpoint": issuer + "/token",
        "authorization_endpoint": issuer + "/auth"}
    handler.documents["/realms/region/certs"] = {"keys": [jwk1, {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]}
    settings = AuthSettings.from_env({"CAREFLOW_AUTH_ISSUER": issuer, "CAREFLOW_AUTH_AUDIENCE": "careflow-fhir",
                                      "CAREFLOW_AUTH_SYSTEM_CLIENTS": "region-engine"})
    verifier = TokenVerifier(settings.issuers(embedded_default_db=True))  # an issuer set: no local one
    assert [i.issuer for i in verifier.issuers.values()] == [issuer]
    client = TestClient(create_app(world, auth=verifier), raise_server_exceptions=False)

    def call(key: Any, kid: str, **claims: Any) -> int:
        token = jwt.encode(_claims(**{"iss": issuer, "client_id": "region-engine", **claims}), key, algorithm="RS256",
                           headers={"kid": kid})
        return client.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}"}).status_code

    assert call(k1, "k1") == 200
    assert call(k2, "k2") == 401  # not published yet
    handler.documents["/realms/region/certs"] = {"keys": [jwk1, jwk2]}  # the provider rotates with overlap
    keyset = next(iter(verifier.issuers.values())).keys
    assert isinstance(keyset, RemoteKeySet)
    keyset.min_interval = 0  # the throttle is tested below; here, the refresh on an unknown kid
    assert call(k2, "k2") == 200 and call(k1, "k1") == 200
    handler.documents["/realms/region/certs"] = {"keys": [jwk2]}
    keyset.lifespan = 0  # the cached set ages out: a removed key stops verifying
    assert call(k1, "k1") == 401 and call(k2, "k2") == 200
    assert call(k2, "k2", client_id="someone-else") == 401  # system scopes need a listed client
    smart = client.get("/.well-known/smart-configuration").json()
    assert smart["token_endpoint"] == issuer + "/token" and smart["authorization_endpoint"] == issuer + "/auth"
    # the HMAC key in the JWKS was never usable; alg HS256 is refused whatever the key
    mac = _unsigned({"alg": "HS256", "kid": "hmac"}, _claims(iss=issuer, client_id="region-engine"))
    sig = hmac.new(b"secret", mac.encode(), hashlib.sha256).digest()
    assert client.get("/fhir/Patient", headers={"Authorization": f"Bearer {mac}.{_b64(sig)}"}).status_code == 401


def test_unknown_kids_do_not_hammer_the_provider() -> None:
    fetched: list[str] = []
    _key, jwk = _rsa_jwk("k1")
    clock = [1000.0]
    keys = RemoteKeySet("http://127.0.0.1:1/certs", fetch=lambda url: fetched.append(url) or {"keys": [jwk]},
                        min_interval=10, clock=lambda: clock[0])
    assert keys.get("k1") is not None and len(fetched) == 1
    for _ in range(50):
        assert keys.get("junk") is None
    assert len(fetched) == 1  # just fetched: an unknown kid waits for the throttle
    clock[0] += 11
    for _ in range(50):
        assert keys.get("junk") is None
    assert len(fetched) == 2  # one early refresh for the unknown kid, then throttled again
    assert keys.get("k1") is not None and len(fetched) == 2


def test_discovery_must_name_the_configured_issuer() -> None:
    d = Discovery("https://idp.one/realms/x", fetch=lambda url: {"issuer": "https://idp.two/", "jwks_uri": "x"})
    with pytest.raises(Exception, match="does not describe"):
        d.jwks_uri()


def test_settings_refuse_to_trust_nobody_and_hmac() -> None:
    with pytest.raises(AuthConfigError, match="no token issuer"):
        AuthSettings.from_env({}).issuers(embedded_default_db=False)
    assert AuthSettings.from_env({}).issuers(embedded_default_db=True)[0].local  # the demo on one's own machine
    assert AuthSettings.from_env({"CAREFLOW_AUTH_LOCAL_ISSUER": "0"}).local_issuer is False
    with pytest.raises(AuthConfigError, match="HS256"):
        AuthSettings.from_env({"CAREFLOW_AUTH_ALGORITHMS": "RS256,HS256"})
    with pytest.raises(AuthConfigError):
        AuthSettings.from_env({"CAREFLOW_AUTH_JWKS_URL": "http://127.0.0.1:1/certs"}).issuers(embedded_default_db=False)


def test_static_jwks_file(tmp_path: Path, world: MemoryRepository) -> None:
    key, jwk = _rsa_jwk("file-key")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    trusted = TrustedIssuer("https://idp.example/", StaticKeySet.from_file(tmp_path / "jwks.json"), ("careflow-fhir",),
                            system_clients=frozenset({"svc"}))
    token = jwt.encode(_claims(iss="https://idp.example/", client_id="svc"), key, algorithm="RS256",
                       headers={"kid": "file-key"})
    assert TokenVerifier([trusted]).verify(token).claims["client_id"] == "svc"
    ps = jwt.encode(_claims(iss="https://idp.example/", client_id="svc"), key, algorithm="PS256",
                    headers={"kid": "file-key"})
    with pytest.raises(TokenError, match="cannot be used with PS256"):  # the JWK says RS256
        TokenVerifier([trusted]).verify(ps)
