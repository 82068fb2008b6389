"""Which token issuers a server trusts, from the settings (environment variables).

| variable | meaning |
|---|---|
| ``CAREFLOW_AUTH_ISSUER`` | the region's OpenID Connect issuer; keys from its discovery document's ``jwks_uri`` |
| ``CAREFLOW_AUTH_JWKS_URL`` | the issuer's JWKS URL, when it has no discovery document (or to override it) |
| ``CAREFLOW_AUTH_JWKS_FILE`` | a JWKS file with the issuer's public keys instead of a URL |
| ``CAREFLOW_AUTH_AUDIENCE`` | accepted ``aud`` values, comma-separated (default ``careflow-fhir``) |
| ``CAREFLOW_AUTH_ALGORITHMS`` | accepted signature algorithms (default: every asymmetric one; never ``none``/HS*) |
| ``CAREFLOW_AUTH_SYSTEM_CLIENTS`` | client ids allowed ``system/`` tokens (backend services), comma-separated |
| ``CAREFLOW_AUTH_AUDITOR_ROLE`` | the ``roles`` claim value that makes an auditor (default ``careflow-auditor``) |
| ``CAREFLOW_AUTH_LOCAL_ISSUER`` | ``1``: trust the local issuer of ``careflow token`` too; ``0``: never |
| ``CAREFLOW_AUTH_LOCAL_KEYS`` | the local issuer's key file (default: in the user's data directory) |

With neither an issuer nor ``CAREFLOW_AUTH_LOCAL_ISSUER`` set, the local issuer is trusted only by a
server on the embedded default database (the SQLite file in the same data directory as its keys):
the demo on one's own machine. Anything else must be configured, and a server with no issuer at all
does not start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from careflow.auth.identity import AUDITOR_ROLE
from careflow.auth.keys import ASYMMETRIC_ALGORITHMS, Discovery, KeySet, RemoteKeySet, StaticKeySet
from careflow.auth.local import DEFAULT_AUDIENCE, LocalIssuer, default_key_file
from careflow.auth.tokens import TrustedIssuer
from careflow.errors import CareflowError


class AuthConfigError(CareflowError):
    """The authentication settings cannot be used."""


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def _flag(name: str, value: str | None) -> bool | None:
    if value is None or value.strip() == "":
        return None
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise AuthConfigError(f"{name} must be 1 or 0, not {value!r}")


@dataclass(frozen=True)
class AuthSettings:
    issuer: str | None = None
    jwks_url: str | None = None
    jwks_file: Path | None = None
    audiences: tuple[str, ...] = (DEFAULT_AUDIENCE,)
    algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS
    system_clients: tuple[str, ...] = ()
    auditor_role: str = AUDITOR_ROLE
    local_issuer: bool | None = None
    local_key_file: Path | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "AuthSettings":
        e = os.environ if env is None else env
        algorithms = _list(e.get("CAREFLOW_AUTH_ALGORITHMS")) or ASYMMETRIC_ALGORITHMS
        bad = [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if bad:
            raise AuthConfigError(f"CAREFLOW_AUTH_ALGORITHMS: {bad[0]!r} is not accepted (asymmetric only: "
                                  f"{', '.join(ASYMMETRIC_ALGORITHMS)})")
        return cls(
            issuer=e.get("CAREFLOW_AUTH_ISSUER") or None,
            jwks_url=e.get("CAREFLOW_AUTH_JWKS_URL") or None,
            jwks_file=Path(e["CAREFLOW_AUTH_JWKS_FILE"]) if e.get("CAREFLOW_AUTH_JWKS_FILE") else None,
            audiences=_list(e.get("CAREFLOW_AUTH_AUDIENCE")) or (DEFAULT_AUDIENCE,),
            algorithms=algorithms,
            system_clients=_list(e.get("CAREFLOW_AUTH_SYSTEM_CLIENTS")),
            auditor_role=e.get("CAREFLOW_AUTH_AUDITOR_ROLE") or AUDITOR_ROLE,
            local_issuer=_flag("CAREFLOW_AUTH_LOCAL_ISSUER", e.get("CAREFLOW_AUTH_LOCAL_ISSUER")),
            local_key_file=Path(e["CAREFLOW_AUTH_LOCAL_KEYS"]) if e.get("CAREFLOW_AUTH_LOCAL_KEYS") else None,
        )

    def external(self) -> TrustedIssuer | None:
        """The region's identity provider, when one is configured."""
        if not (self.issuer or self.jwks_url or self.jwks_file):
            return None
        if not self.issuer:
            raise AuthConfigError("CAREFLOW_AUTH_JWKS_URL/CAREFLOW_AUTH_JWKS_FILE need CAREFLOW_AUTH_ISSUER (the iss tokens carry)")
        discovery = Discovery(self.issuer) if not (self.jwks_url or self.jwks_file) else None
        keys: KeySet
        if self.jwks_file:
            keys = StaticKeySet.from_file(self.jwks_file)
        elif self.jwks_url:
            keys = RemoteKeySet(self.jwks_url)
        else:
            assert discovery is not None
            keys = RemoteKeySet(discovery.jwks_uri)
        return TrustedIssuer(self.issuer, keys, self.audiences, algorithms=self.algorithms,
                             system_clients=frozenset(self.system_clients),
                             metadata=discovery.metadata if discovery else None)

    def issuers(self, *, embedded_default_db: bool) -> list[TrustedIssuer]:
        """Every issuer to trust; raises when there is none (a server must not run open or shut)."""
        out: list[TrustedIssuer] = []
        ext = self.external()
        if ext is not None:
            out.append(ext)
        local = self.local_issuer
        if local is None:
            local = ext is None and embedded_default_db and self.local_key_file is None
        if local:
            out.append(LocalIssuer(self.local_key_file or default_key_file()).trusted(self.audiences))
        if not out:
            raise AuthConfigError(
                "no token issuer is configured: set CAREFLOW_AUTH_ISSUER (OpenID Connect) or "
                "CAREFLOW_AUTH_LOCAL_ISSUER=1 (tokens from 'careflow token'); "
                "--insecure-no-auth only for a loopback test server")
        return out
