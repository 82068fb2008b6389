"""The opaque ``_cursor`` of a search's next link: where the previous page ended.

Keyset paging: instead of ``_offset=N`` (which makes the database find and skip N matches on every
deep page), the next link names the last match of the page, by its sort values and its id, and the
next page is "the matches after that one in the search's order".  The cost of a page then does not
grow with how deep it is, and resources added or removed between pages neither repeat nor skip a
match that was already there (a new one appears if it sorts after the cursor).

The cursor holds only what the caller already saw on the page (the last match's id and the values
it was sorted by), as base64url JSON: no row numbers, no other resource's data, so two worlds that
differ only in what the caller may not see give the same links (``tests/api/test_leak_proof.py``).
Each store resolves the id to its own creation order (the tie-break of every sort); an id the
caller cannot see, or that no longer exists, is refused like a malformed cursor.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Union

from careflow.errors import InvalidSearch

SortValue = Union[str, float, datetime, None]


@dataclass(frozen=True)
class Cursor:
    """The last match of a page: its value for each sort key (None: it had none) and its id."""

    values: tuple[SortValue, ...]
    id: str

    def encode(self) -> str:
        packed = [_pack(v) for v in self.values]
        raw = json.dumps({"v": packed, "id": self.id}, separators=(",", ":"), ensure_ascii=False)
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _pack(v: SortValue) -> Any:
    if isinstance(v, datetime):
        return {"d": v.isoformat()}
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return {"n": repr(float(v))}
    return v  # str or None


def _unpack(v: Any) -> SortValue:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, dict) and len(v) == 1:
        if isinstance(v.get("d"), str):
            return datetime.fromisoformat(v["d"])
        if isinstance(v.get("n"), str):
            return float(v["n"])
    raise ValueError("bad sort value")


def decode(text: str, keys: int) -> Cursor:
    """The cursor of a next link; InvalidSearch when it is not one this search can continue from."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw.decode())
        values = tuple(_unpack(v) for v in data["v"])
        rid = data["id"]
        if not isinstance(rid, str) or not rid or len(values) != keys:
            raise ValueError("shape")
        if any("\x00" in v for v in (rid, *values) if isinstance(v, str)):
            raise ValueError("NUL")  # PostgreSQL refuses it in text
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        # RecursionError: a forged cursor of some thousand nested brackets exhausts the parser's stack
        raise InvalidSearch("_cursor", "is not a cursor of this search: follow the next link as given") from None
    return Cursor(values, rid)


def cursor_gone() -> InvalidSearch:
    return InvalidSearch("_cursor", "the page this cursor continues from is gone: search again from the first page")


__all__ = ["Cursor", "SortValue", "cursor_gone", "decode"]
