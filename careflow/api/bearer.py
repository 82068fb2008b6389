"""Bearer tokens -> principals for the API (the :class:`careflow.api.security.Authenticator` of a
real server), and the SMART discovery document.

A verified token's principal is cached (by the token text) until the token expires or ``ttl``
seconds pass, whichever is first, so the hot path is one dictionary look-up; the PractitionerRole
facts behind it are cached as long, so a deactivated role stops working within ``ttl`` seconds.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from fastapi import APIRouter, Request

from careflow.access.principal import SYSTEM, Principal
from careflow.api.errors import ApiError, Unauthenticated
from careflow.api.responses import FhirResponse
from careflow.auth.identity import PrincipalBuilder
from careflow.auth.keys import KeysUnavailable
from careflow.auth.scopes import SCOPES_SUPPORTED
from careflow.auth.tokens import TokenError, TokenVerifier
from careflow.errors import CareflowError, Gone, NotFound
from careflow.fhir.search_query import parse_search
from careflow.store.port import Repository

_MAX_TOKEN_BYTES = 16_384
_CACHE_SIZE = 20_000


class IdentityProviderUnavailable(ApiError):
    """The identity provider's keys cannot be fetched: nobody can be authenticated right now."""

    http_status = 503
    code = "transient"


class StoreDirectory:
    """The people directory of :class:`PrincipalBuilder`, read from the store as the system (the
    caller is not known until this answers)."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository

    def read(self, rtype: str, rid: str) -> dict[str, Any] | None:
        try:
            return self.repository.read(rtype, rid).resource
        except (NotFound, Gone):
            return None
        except CareflowError:  # e.g. an id the store refuses: no such user
            return None

    def roles_of(self, practitioner_id: str) -> list[dict[str, Any]]:
        query = parse_search("PractitionerRole", [("practitioner", f"Practitioner/{practitioner_id}"),
                                                  ("_count", "10")], strict=True)
        return [s.resource for s in self.repository.search(query).matches if s.resource]


class BearerAuthenticator:
    """``Authorization: Bearer <JWT>`` -> :class:`Principal` (RFC 6750 errors as :class:`Unauthenticated`)."""

    def __init__(self, verifier: TokenVerifier, builder: PrincipalBuilder, *, ttl: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.verifier, self.builder, self.ttl, self._clock = verifier, builder, ttl, clock
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _token(authorization: str | None) -> str:
        if authorization is None or not authorization.strip():
            raise Unauthenticated("this server needs a bearer token (Authorization: Bearer ...)", error=None)
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("only Bearer authorization is accepted", error="invalid_request")
        if len(token) > _MAX_TOKEN_BYTES:
            raise Unauthenticated("the bearer token is too long", error="invalid_token")
        return token.strip()

    def cached(self, authorization: str | None) -> Principal | None:
        if authorization is None:
            return None
        hit = self._cache.get(authorization)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        return None

    def authenticate(self, authorization: str | None) -> Principal:
        hit = self.cached(authorization)
        if hit is not None:
            return hit
        token = self._token(authorization)
        try:
            verified = self.verifier.verify(token)
            principal = self.builder.build(verified)
        except TokenError as exc:
            raise Unauthenticated(str(exc), error=exc.error) from None
        except KeysUnavailable:
            raise IdentityProviderUnavailable("the identity provider cannot be reached; try again shortly") from None
        exp = verified.claims.get("exp")
        until = min(float(exp), self._clock() + self.ttl) if isinstance(exp, (int, float)) else 0.0
        with self._lock:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            assert authorization is not None
            self._cache[authorization] = (until, principal)
        return principal


def bearer_authenticator(repository: Repository, verifier: TokenVerifier, *, auditor_role: str | None = None,
                         ttl: float = 60.0) -> BearerAuthenticator:
    kwargs = {"auditor_role": auditor_role} if auditor_role else {}
    return BearerAuthenticator(verifier, PrincipalBuilder(StoreDirectory(repository), ttl=ttl, **kwargs), ttl=ttl)


# ------------------------------------------------------------------------------------------ discovery


def smart_configuration(verifier: TokenVerifier | None) -> dict[str, Any]:
    """The SMART App Launch ``/.well-known/smart-configuration`` document. Endpoints come from the
    region's identity provider (its OpenID Connect discovery document) when one is trusted; the local
    issuer has no HTTP endpoints (``careflow token`` mints its tokens)."""
    doc: dict[str, Any] = {
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "scopes_supported": list(SCOPES_SUPPORTED),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": ["launch-standalone", "client-public", "client-confidential-asymmetric",
                         "context-standalone-patient", "permission-patient", "permission-user",
                         "permission-offline", "permission-v1", "permission-v2", "sso-openid-connect"],
    }
    for issuer in (verifier.issuers.values() if verifier else ()):
        if issuer.local:
            doc.setdefault("issuer", issuer.issuer)
            continue
        doc["issuer"] = issuer.issuer
        meta: dict[str, Any] = {}
        if issuer.metadata is not None:
            try:
                meta = issuer.metadata()
            except CareflowError:
                meta = {}
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri", "introspection_endpoint",
                    "revocation_endpoint", "registration_endpoint", "userinfo_endpoint",
                    "token_endpoint_auth_methods_supported"):
            if key in meta:
                doc[key] = meta[key]
        break
    doc["token_endpoint_auth_methods_supported"] = doc.get("token_endpoint_auth_methods_supported",
                                                           ["private_key_jwt"])
    return doc


discovery_router = APIRouter()


@discovery_router.get("/.well-known/smart-configuration", summary="SMART App Launch configuration",
                      include_in_schema=True)
@discovery_router.get("/fhir/.well-known/smart-configuration", summary="SMART App Launch configuration (FHIR base)")
async def smart_configuration_route(request: Request) -> FhirResponse:
    verifier = getattr(request.app.state, "token_verifier", None)
    return FhirResponse(smart_configuration(verifier), media_type="application/json")


__all__ = ["BearerAuthenticator", "StoreDirectory", "bearer_authenticator", "discovery_router", "smart_configuration",
           "SYSTEM"]
