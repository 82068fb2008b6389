"""Bearer token verification: signed JWTs (RFC 7519) from trusted issuers, checked with PyJWT.

What a token must pass, in order, each failure a :class:`TokenError` (-> 401 ``invalid_token``):
a JWS with an ``alg`` on the issuer's allow-list (asymmetric only: never ``none``, never HMAC); an
``iss`` that is a trusted issuer; a ``kid`` naming one of that issuer's keys (a remote JWKS is fetched
again for an unknown kid) whose type fits the ``alg``; a valid signature; ``exp`` in the future and
``nbf`` (when present) in the past, with a small leeway for clock skew; an ``aud`` that is ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jwt
from jwt import exceptions as jwt_errors

from careflow.auth.keys import ASYMMETRIC_ALGORITHMS, KeySet
from careflow.errors import CareflowError

DEFAULT_LEEWAY_SECONDS = 30


class TokenError(CareflowError):
    """The token is not acceptable; ``error`` is the RFC 6750 code (``invalid_token``)."""

    error = "invalid_token"


@dataclass(frozen=True)
class TrustedIssuer:
    """One identity provider whose tokens careflow accepts.

    ``system_clients``: client ids allowed to act as the system (``system/`` scopes, no user);
    ``local``: the embedded issuer of ``careflow token`` (reported in the SMART configuration)."""

    issuer: str
    keys: KeySet
    audiences: tuple[str, ...]
    algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS
    system_clients: frozenset[str] = frozenset()
    local: bool = False
    metadata: Any = None  # callable -> OIDC metadata dict (discovery), for the SMART configuration

    def __post_init__(self) -> None:
        bad = [a for a in self.algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if bad:
            raise CareflowError(f"algorithm {bad[0]!r} is not accepted for tokens (asymmetric signatures only: "
                                f"{', '.join(ASYMMETRIC_ALGORITHMS)})")
        if not self.audiences:
            raise CareflowError(f"issuer {self.issuer}: at least one audience is needed")


@dataclass(frozen=True)
class Verified:
    claims: dict[str, Any]
    issuer: TrustedIssuer
    header: dict[str, Any] = field(default_factory=dict)


class TokenVerifier:
    """Verifies tokens of any of ``issuers``; several issuers may be trusted at once (the region's
    identity provider and, for a local server, the local issuer)."""

    def __init__(self, issuers: list[TrustedIssuer], *, leeway: int = DEFAULT_LEEWAY_SECONDS) -> None:
        if not issuers:
            raise CareflowError("no token issuer is trusted")
        self.issuers = {i.issuer: i for i in issuers}
        self.leeway = leeway

    def verify(self, token: str) -> Verified:
        try:
            header = jwt.get_unverified_header(token)
        except jwt_errors.PyJWTError:
            raise TokenError("the bearer token is not a signed JWT") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGORITHMS:
            raise TokenError(f"token algorithm {alg!r} is not accepted")
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt_errors.PyJWTError:
            raise TokenError("the bearer token is not a signed JWT") from None
        iss = unverified.get("iss")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise TokenError("the token is not from a trusted issuer")
        if alg not in issuer.algorithms:
            raise TokenError(f"token algorithm {alg!r} is not accepted from this issuer")
        kid = header.get("kid")
        key = issuer.keys.get(kid if isinstance(kid, str) else None)
        if key is None:
            raise TokenError("the token is signed with a key this server does not know")
        if alg not in key.algorithms:
            raise TokenError(f"the token's key cannot be used with {alg}")
        try:
            claims = jwt.decode(
                token, key.key.key, algorithms=[alg], audience=list(issuer.audiences), issuer=issuer.issuer,
                leeway=self.leeway, options={"require": ["exp", "iss", "aud"], "verify_signature": True},
            )
        except jwt_errors.ExpiredSignatureError:
            raise TokenError("the token has expired") from None
        except jwt_errors.ImmatureSignatureError:
            raise TokenError("the token is not valid yet (nbf/iat)") from None
        except jwt_errors.InvalidAudienceError:
            raise TokenError("the token is not meant for this server (aud)") from None
        except jwt_errors.InvalidIssuerError:
            raise TokenError("the token is not from a trusted issuer") from None
        except jwt_errors.InvalidSignatureError:
            raise TokenError("the token signature does not verify") from None
        except jwt_errors.MissingRequiredClaimError as exc:
            raise TokenError(f"the token has no {exc.claim!r} claim") from None
        except jwt_errors.PyJWTError:
            raise TokenError("the bearer token cannot be verified") from None
        return Verified(claims, issuer, header)
