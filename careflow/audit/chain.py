"""The MAC chain of the audit log, and its verification (pure).

Entry ``n`` (``seq`` = n, contiguous from 1) stores its content, the previous entry's MAC
(``prev_mac``; 32 zero bytes for the first) and ``mac = HMAC-SHA256(audit key, "careflow-audit-1" |
seq | len(content) | content | prev_mac)``.  Without the key nobody can make a MAC, so:

* an altered entry (content, seq or prev_mac) no longer matches its MAC;
* a removed entry leaves a gap in ``seq`` (and its successor's ``prev_mac`` names a MAC no longer there);
* an inserted entry has no valid MAC, and renumbering entries to make room breaks theirs;
* a moved (swapped, reordered) entry is authentic only under another ``seq``: the report says which.

What the chain alone cannot show is the removal of the newest entries (the tail): ``verify`` reports
the head (last seq and MAC) so it can be compared with one kept elsewhere (``--expect-head``).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Any, Iterable

import orjson

GENESIS = bytes(32)
_LABEL = b"careflow-audit-1\x00"
_SEARCH_WINDOW = 1000  # how far from its place a moved entry is looked for


def entry_mac(key: bytes, seq: int, content: bytes, prev_mac: bytes) -> bytes:
    h = hmac.new(key, _LABEL, hashlib.sha256)
    h.update(struct.pack(">QQ", seq, len(content)))
    h.update(content)
    h.update(prev_mac)
    return h.digest()


@dataclass(frozen=True)
class Entry:
    seq: int
    content: bytes
    prev_mac: bytes
    mac: bytes
    columns: tuple[Any, ...] | None = None  # (id, recorded text, action, subtype, outcome, agent) as stored


def columns_of(content: bytes) -> tuple[Any, ...]:
    """The search columns an entry's content implies (compared with the stored ones)."""
    from careflow.audit.record import columns

    found = orjson.loads(content)
    if not isinstance(found, dict):
        raise orjson.JSONDecodeError("an audit entry is a JSON object", "", 0)
    return columns(found)


@dataclass
class Report:
    entries: int
    problems: list[str]
    head_seq: int
    head_mac: str

    @property
    def ok(self) -> bool:
        return not self.problems


def _authentic(key: bytes, e: Entry, seq: int) -> bool:
    return hmac.compare_digest(entry_mac(key, seq, e.content, e.prev_mac), e.mac)


def _original_seq(key: bytes, e: Entry) -> int | None:
    for delta in range(1, _SEARCH_WINDOW + 1):
        for seq in (e.seq - delta, e.seq + delta):
            if seq >= 1 and _authentic(key, e, seq):
                return seq
    return None


def verify(entries: Iterable[Entry], key: bytes, *, expect_head: tuple[int, str] | None = None) -> Report:
    """Check every entry (in ``seq`` order) and the links between them; one line per problem."""
    findings: list[tuple[int, str, Any]] = []  # (seq, kind, detail)
    expected = 1
    prev_mac = GENESIS
    prev_bad = False
    count = 0
    last: Entry | None = None
    for e in entries:
        count += 1
        gap = e.seq > expected
        if gap:
            findings.append((expected, "missing", e.seq - 1))
        elif e.seq < expected:
            findings.append((e.seq, "duplicate", None))
        if not _authentic(key, e, e.seq):
            origin = _original_seq(key, e)
            findings.append((e.seq, "moved", origin) if origin is not None else (e.seq, "forged", None))
            bad = True
        elif not gap and not prev_bad and not hmac.compare_digest(e.prev_mac, prev_mac):
            findings.append((e.seq, "unlinked", None))
            bad = True
        else:
            bad = False
            if e.columns is not None:
                try:
                    implied = columns_of(e.content)
                except orjson.JSONDecodeError:
                    implied = None
                if implied != e.columns:
                    findings.append((e.seq, "columns", None))
        prev_mac, prev_bad, expected, last = e.mac, bad, e.seq + 1, e
    problems = _lines(findings)
    head = (last.seq, last.mac.hex()) if last is not None else (0, GENESIS.hex())
    if expect_head is not None and (head[0] != expect_head[0] or head[1] != expect_head[1].lower()):
        if head[0] < expect_head[0]:
            problems.append(f"the log ends at entry {head[0]}, but its head was entry {expect_head[0]}: "
                            "the newest entries were removed")
        else:
            problems.append(f"the head is entry {head[0]} ({head[1][:16]}...), not the expected entry {expect_head[0]}")
    return Report(count, problems, head[0], head[1])


def _lines(findings: list[tuple[int, str, Any]]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(findings):
        seq, kind, detail = findings[i]
        if kind == "moved":
            offset = detail - seq
            j = i
            while (j + 1 < len(findings) and findings[j + 1][1] == "moved"
                   and findings[j + 1][0] == findings[j][0] + 1 and findings[j + 1][2] - findings[j + 1][0] == offset):
                j += 1
            if j > i:
                last = findings[j][0]
                out.append(f"entries {seq}-{last} hold entries {seq + offset}-{last + offset} (renumbered by "
                           f"{-offset:+d}: an entry was inserted or removed before them)")
            else:
                out.append(f"entry {seq} holds entry {detail} (moved: entries were swapped or reordered)")
            i = j + 1
            continue
        if kind == "missing":
            out.append(f"entry {seq} is missing (removed)" if detail == seq
                       else f"entries {seq}-{detail} are missing (removed)")
        elif kind == "forged":
            out.append(f"entry {seq} is not authentic: altered, or written without the audit key (inserted)")
        elif kind == "unlinked":
            out.append(f"entry {seq} does not follow entry {seq - 1} (an entry was inserted or removed between them)")
        elif kind == "duplicate":
            out.append(f"entry {seq} appears twice")
        elif kind == "columns":
            out.append(f"entry {seq}: its search columns were altered (they differ from its authentic content)")
        i += 1
    return out
