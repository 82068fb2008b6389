"""Where the master key comes from: the settings (environment), a key file, or the embedded default.

The master key only wraps the data keys kept in the database (``careflow.store.keyring``); it never
touches a resource.  Keeping it outside the database is the point: a copy of the database file, a
backup or a ``pg_dump`` without it reveals nothing.

* ``CAREFLOW_MASTER_KEY``: the key itself, 32 bytes in base64 (``careflow keys new-master`` prints one);
* ``CAREFLOW_MASTER_KEY_FILE``: a file holding that text, readable by its owner only (mode 0600);
* neither, with the embedded SQLite default: ``master.key`` in careflow's data directory
  (``$CAREFLOW_DATA_DIR`` or the user data directory), generated with mode 0600 at first use.
  PostgreSQL (production) never gets a generated key: it must be configured.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import stat
from pathlib import Path

from careflow.errors import CareflowError

ENV_KEY = "CAREFLOW_MASTER_KEY"
ENV_KEY_FILE = "CAREFLOW_MASTER_KEY_FILE"
ENV_DATA_DIR = "CAREFLOW_DATA_DIR"
DEFAULT_FILE = "master.key"


class KeyConfigError(CareflowError):
    """The master key is missing, unreadable, malformed or too widely readable."""


def data_dir() -> Path:
    """careflow's data directory: ``$CAREFLOW_DATA_DIR``, else the user data directory."""
    override = os.environ.get(ENV_DATA_DIR)
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("careflow"))


def encode(key: bytes) -> str:
    return base64.b64encode(key).decode()


def new_master_key() -> str:
    """A fresh master key as the text ``CAREFLOW_MASTER_KEY`` or a key file holds."""
    return encode(os.urandom(32))


def decode(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyConfigError(f"{where} is not base64 (make one with `careflow keys new-master`)") from None
    if len(key) != 32:
        raise KeyConfigError(f"{where} holds {len(key)} bytes; a master key has 32")
    return key


def fingerprint(master: bytes) -> str:
    """A short public name of the master key (stored beside each wrapped data key): telling 'wrong
    master key' from 'altered data key' needs it; it reveals nothing about the key."""
    return hmac.new(master, b"careflow master key id", hashlib.sha256).hexdigest()[:16]


def read_key_file(path: Path) -> bytes:
    try:
        info = path.stat()
    except OSError as exc:
        raise KeyConfigError(f"cannot read the master key file {path}: {exc.strerror or exc}") from None
    if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyConfigError(f"the master key file {path} is readable by others: chmod 600 {path}")
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyConfigError(f"cannot read the master key file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return decode(text, f"the master key file {path}")


def _generated(path: Path) -> bytes:
    """The embedded default's key file, created (0600, never overwritten) when absent."""
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: read theirs
        except OSError as exc:
            raise KeyConfigError(f"cannot create the master key file {path}: {exc.strerror or exc}") from None
        else:
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(new_master_key() + "\n")
    return read_key_file(path)


def generated_key_file(path: Path) -> bytes:
    """A 32-byte key kept in a file (mode 0600), generated at first use (never overwritten)."""
    return _generated(path)


def load_master_key(*, embedded: bool) -> bytes:
    """The configured master key; ``embedded`` (SQLite) may fall back to the generated key file."""
    text = os.environ.get(ENV_KEY)
    if text:
        return decode(text, ENV_KEY)
    file = os.environ.get(ENV_KEY_FILE)
    if file:
        return read_key_file(Path(file).expanduser())
    if embedded:
        return _generated(data_dir() / DEFAULT_FILE)
    raise KeyConfigError(
        f"no master key configured: set {ENV_KEY} or {ENV_KEY_FILE} (make one with `careflow keys new-master`)"
    )
