"""Verification keys: a fixed set (a JWKS file, the local issuer) or a remote JWKS, refreshed when a
token names a key id it does not know yet, so an identity provider can rotate keys with overlap.

Only asymmetric keys are kept. A key is used with the algorithms its type allows (RSA: RS*/PS*, EC:
the ES* of its curve, OKP Ed25519/Ed448: EdDSA), narrowed to its ``alg`` member when it has one, so a
public key can never be fed to HMAC (the ``HS256`` with a public key confusion) nor an RSA key to ES*.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from jwt import PyJWK
from jwt.exceptions import PyJWKError

from careflow.errors import CareflowError

# Signature algorithms careflow accepts at all: asymmetric only. ``none`` and the HMAC family are
# never on it, whatever the settings say.
ASYMMETRIC_ALGORITHMS: tuple[str, ...] = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)
_EC_ALG = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


class KeysUnavailable(CareflowError):
    """The identity provider's keys (or its discovery document) cannot be fetched right now."""


class KeyConfigError(CareflowError):
    """A configured key or key file cannot be used."""


@dataclass(frozen=True)
class VerificationKey:
    kid: str | None
    algorithms: frozenset[str]
    key: PyJWK


def key_algorithms(jwk: dict[str, Any]) -> frozenset[str]:
    """The algorithms a JWK may verify; empty for symmetric or unknown keys."""
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "RSA":
        allowed = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    elif kty == "EC" and crv in _EC_ALG:
        allowed = {_EC_ALG[crv]}
    elif kty == "OKP" and crv in ("Ed25519", "Ed448"):
        allowed = {"EdDSA"}
    else:
        return frozenset()
    alg = jwk.get("alg")
    if alg is not None:
        allowed &= {alg}
    return frozenset(allowed)


def _public(jwk: dict[str, Any]) -> dict[str, Any]:
    """The public members of a JWK (the local key file holds private ones; verifying needs none)."""
    private = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
    return {k: v for k, v in jwk.items() if k not in private}


def parse_jwks(data: Any, *, where: str) -> list[VerificationKey]:
    """The usable signing keys of a JWKS document; symmetric, encryption-only or broken keys are
    skipped (a JWKS may hold keys for other purposes)."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise KeyConfigError(f"{where} is not a JWKS (an object with a 'keys' array)")
    out: list[VerificationKey] = []
    for jwk in data["keys"]:
        if not isinstance(jwk, dict) or jwk.get("use") not in (None, "sig"):
            continue
        algorithms = key_algorithms(jwk)
        if not algorithms:
            continue
        try:
            key = PyJWK(_public(jwk), algorithm=sorted(algorithms)[0])
        except (PyJWKError, ValueError, TypeError):
            continue
        kid = jwk.get("kid")
        out.append(VerificationKey(kid if isinstance(kid, str) else None, algorithms, key))
    return out


class KeySet(Protocol):
    def get(self, kid: str | None) -> VerificationKey | None: ...


def _pick(keys: list[VerificationKey], kid: str | None) -> VerificationKey | None:
    if kid is None:  # a token without kid is accepted only when there is no choice to make
        return keys[0] if len(keys) == 1 else None
    for k in keys:
        if k.kid == kid:
            return k
    return None


class StaticKeySet:
    """A fixed set of keys (several at once: the old and the new during a rotation)."""

    def __init__(self, keys: list[VerificationKey]) -> None:
        self.keys = list(keys)

    @classmethod
    def from_jwks(cls, data: Any, where: str = "the JWKS") -> "StaticKeySet":
        return cls(parse_jwks(data, where=where))

    @classmethod
    def from_file(cls, path: Path) -> "StaticKeySet":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise KeyConfigError(f"cannot read the key file {path}: {exc.strerror or exc}") from None
        except ValueError:
            raise KeyConfigError(f"the key file {path} is not JSON") from None
        return cls.from_jwks(data, str(path))

    def get(self, kid: str | None) -> VerificationKey | None:
        return _pick(self.keys, kid)


Fetch = Callable[[str], Any]  # url -> parsed JSON; raises KeysUnavailable


def http_json(url: str, timeout: float = 10.0) -> Any:
    """GET a JSON document (no redirects: a key URL that moves is a configuration problem)."""
    import httpx

    try:
        r = httpx.get(url, timeout=timeout, follow_redirects=False, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise KeysUnavailable(f"cannot fetch {url}: {type(exc).__name__}") from None
    if r.status_code != 200:
        raise KeysUnavailable(f"{url} answered {r.status_code}")
    try:
        return r.json()
    except ValueError:
        raise KeysUnavailable(f"{url} did not answer JSON") from None


class RemoteKeySet:
    """A JWKS fetched from ``url`` (or from where ``url()`` says, for discovery), kept ``lifespan``
    seconds and fetched again early when a token names an unknown key id, at most once every
    ``min_interval`` seconds (so junk kids cannot make us hammer the provider). When a refresh fails
    the keys already known stay in use."""

    def __init__(self, url: str | Callable[[], str], *, fetch: Fetch = http_json, lifespan: float = 300.0,
                 min_interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._url = url
        self._fetch = fetch
        self.lifespan, self.min_interval, self._clock = lifespan, min_interval, clock
        self._keys: list[VerificationKey] = []
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        url = self._url() if callable(self._url) else self._url
        self._fetched_at = self._clock()  # also on failure: the interval throttles retries too
        self._keys = parse_jwks(self._fetch(url), where=url)

    def get(self, kid: str | None) -> VerificationKey | None:
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self.lifespan
            if stale:
                try:
                    self._refresh()
                except (KeysUnavailable, KeyConfigError):
                    if not self._keys:
                        raise
            found = _pick(self._keys, kid)
            if found is None and not stale and now - (self._fetched_at or 0) >= self.min_interval:
                try:
                    self._refresh()
                except (KeysUnavailable, KeyConfigError):
                    if not self._keys:
                        raise
                found = _pick(self._keys, kid)
            return found


class Discovery:
    """An OpenID Connect provider's metadata (``<issuer>/.well-known/openid-configuration``),
    fetched once when first needed; its ``issuer`` must be the configured one (OIDC Discovery 4.3)."""

    def __init__(self, issuer: str, *, fetch: Fetch = http_json) -> None:
        self.issuer = issuer
        self._fetch = fetch
        self._metadata: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is None:
                url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
                data = self._fetch(url)
                if not isinstance(data, dict) or data.get("issuer") != self.issuer:
                    raise KeysUnavailable(f"{url} does not describe the issuer {self.issuer}")
                if not isinstance(data.get("jwks_uri"), str):
                    raise KeysUnavailable(f"{url} names no jwks_uri")
                self._metadata = data
            return self._metadata

    def jwks_uri(self) -> str:
        return str(self.metadata()["jwks_uri"])
