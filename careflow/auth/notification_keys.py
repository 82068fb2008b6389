"""The key that signs Subscription notifications, and its public JWKS.

A receiver must be able to tell a notification careflow sent from one anybody could post to its
endpoint. Each notification carries a detached JWS (RFC 7515 appendix F: ``header..signature``, the
payload being the exact body bytes) in the ``X-Careflow-Signature`` header, ES256, with the key id;
the public keys are served at ``/.well-known/jwks.json``. The key pair is its own (not the local
token issuer's: a signing key has one purpose), kept in the same file format and rotated the same
way (:class:`careflow.auth.local.LocalIssuer`): ``CAREFLOW_NOTIFICATION_KEYS`` names the file,
default ``notification-keys.json`` in the user's data directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from careflow.auth.keys import KeyConfigError
from careflow.auth.local import LocalIssuer

ENV_KEY_FILE = "CAREFLOW_NOTIFICATION_KEYS"
SIGNATURE_HEADER = "X-Careflow-Signature"


def default_key_file() -> Path:
    env = os.environ.get(ENV_KEY_FILE)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("careflow")) / "notification-keys.json"


class NotificationSigner:
    """Signs notification bodies with the newest key of ``path`` (made on first use)."""

    def __init__(self, path: Path | None = None) -> None:
        self.keys = LocalIssuer(path or default_key_file())

    def public_jwks(self) -> dict[str, Any]:
        return self.keys.public_jwks()

    def sign(self, body: bytes) -> str:
        """The detached compact JWS of ``body``."""
        key = self.keys.keys()[-1]
        private = ECAlgorithm(ECAlgorithm.SHA256).from_jwk(json.dumps(key))
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise KeyConfigError(f"{self.keys.path}: the newest key is not a private EC key")
        token = jwt.api_jws.encode(body, private, algorithm="ES256",
                                   headers={"kid": key["kid"], "typ": "careflow-notification+jws"})
        head, _, tail = token.split(".")
        return f"{head}..{tail}"


def verify(body: bytes, signature: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """The JWS header when ``signature`` is a valid detached JWS of ``body`` by a key of ``jwks``;
    raises ``jwt.InvalidSignatureError`` (or another ``jwt.PyJWTError``) otherwise. What a receiver
    does; the tests use it."""
    import base64

    head, empty, tail = signature.split(".")
    if empty:
        raise jwt.InvalidTokenError("not a detached JWS")
    header = jwt.get_unverified_header(f"{head}.e30.{tail}")
    key = next((k for k in jwks.get("keys") or () if k.get("kid") == header.get("kid")), None)
    if key is None:
        raise jwt.InvalidKeyError("no published key has this kid")
    public = ECAlgorithm(ECAlgorithm.SHA256).from_jwk(json.dumps(key))
    payload = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
    jwt.api_jws.decode(f"{head}.{payload}.{tail}", public, algorithms=["ES256"])  # type: ignore[arg-type]
    return dict(header)
