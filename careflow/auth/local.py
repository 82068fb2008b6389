"""The local token issuer of ``careflow token`` and ``careflow demo``: an ES256 key pair kept in a
file in the user's data directory (readable by its owner only), for demos and tests.

The file holds one or more private JWKs; the newest signs, all of them verify, so
:meth:`LocalIssuer.rotate` starts signing with a fresh key while tokens signed with the previous one
stay valid until the rotation after (overlap of one generation).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from careflow.auth.keys import KeyConfigError, RemoteKeySet
from careflow.auth.tokens import TrustedIssuer

LOCAL_ISSUER = "urn:careflow:local-issuer"
LOCAL_CLIENT = "careflow-cli"  # the client id of tokens minted here; trusted for system scopes
DEFAULT_AUDIENCE = "careflow-fhir"
ENV_KEY_FILE = "CAREFLOW_AUTH_LOCAL_KEYS"
KEEP_KEYS = 2


def default_key_file() -> Path:
    """``local-issuer-keys.json`` in the data directory the embedded database uses
    (``$CAREFLOW_AUTH_LOCAL_KEYS`` overrides)."""
    env = os.environ.get(ENV_KEY_FILE)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("careflow")) / "local-issuer-keys.json"


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint of an EC key: the key id."""
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def _new_key() -> dict[str, Any]:
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True)
    jwk.update({"kid": _thumbprint(jwk), "alg": "ES256", "use": "sig", "created": int(time.time())})
    return jwk


class LocalIssuer:
    """Keys and token minting of the local issuer, stored in ``path``."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_key_file()

    def _read(self) -> list[dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise KeyConfigError(f"cannot read the local issuer keys {self.path}: {exc}") from None
        keys = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(keys, list) or not all(isinstance(k, dict) and "d" in k for k in keys):
            raise KeyConfigError(f"{self.path} is not a local issuer key file")
        return keys

    def _write(self, keys: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"keys": keys}, f)
        os.replace(tmp, self.path)

    def keys(self, *, create: bool = True) -> list[dict[str, Any]]:
        """The private keys, newest last; a first key is made when there is none (and ``create``)."""
        keys = self._read()
        if not keys and create:
            self._create_first()
            keys = self._read()
        return keys

    def _create_first(self) -> None:
        """Write a first key unless another process just did: two processes starting at once (the
        workers of ``serve --workers N``) must end up signing with the same key, so the file is
        linked into place only when absent and the loser reads the winner's."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"keys": [_new_key()]}, f)
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            pass  # another process made the first key: theirs is the one
        finally:
            os.unlink(tmp)

    def rotate(self, keep: int = KEEP_KEYS) -> str:
        """Sign with a new key from now on; keep the ``keep - 1`` previous ones trusted. Returns the new kid."""
        keys = [*self.keys(create=False), _new_key()]
        self._write(keys[-max(1, keep):])
        return str(keys[-1]["kid"])

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [{k: v for k, v in key.items() if k not in ("d", "created")} for key in self.keys()]}

    def trusted(self, audiences: tuple[str, ...] = (DEFAULT_AUDIENCE,)) -> TrustedIssuer:
        """What a server needs to trust this issuer: its public keys, read again from the file when a
        token names a key id not seen yet (a ``careflow token --rotate-key`` while the server runs)."""
        keys = RemoteKeySet(str(self.path), fetch=lambda _path: self.public_jwks(), min_interval=1.0)
        return TrustedIssuer(LOCAL_ISSUER, keys, audiences,
                             algorithms=("ES256",), system_clients=frozenset({LOCAL_CLIENT}), local=True)

    def mint(self, claims: dict[str, Any], *, minutes: float = 60, audience: str = DEFAULT_AUDIENCE,
             now: float | None = None) -> str:
        """A signed access token with ``claims`` plus iss, aud, iat, nbf, exp, jti, client_id."""
        key = self.keys()[-1]
        issued = int(now if now is not None else time.time())
        body = {"iss": LOCAL_ISSUER, "aud": audience, "iat": issued, "nbf": issued,
                "exp": issued + int(minutes * 60), "jti": uuid.uuid4().hex, "client_id": LOCAL_CLIENT, **claims}
        signing = ECAlgorithm(ECAlgorithm.SHA256).from_jwk(json.dumps(key))
        if not isinstance(signing, ec.EllipticCurvePrivateKey):
            raise KeyConfigError(f"{self.path}: the newest key is not a private EC key")
        return jwt.encode(body, signing, algorithm="ES256", headers={"kid": key["kid"], "typ": "at+jwt"})
