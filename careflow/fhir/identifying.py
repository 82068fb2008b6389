"""Direct identifiers in the search index: which values they are, and their blind-index form.

A stolen database must not reveal who the patients are, and the index tables and conditional-create
keys hold copies of searched values.  So the store passes every index row and every query through a
``Protection`` before they reach storage: values of *identifying* parameters are replaced by a keyed
hash (HMAC-SHA256 with the blind-index key, truncated to 128 bits, 32 hex characters), which still
answers equality but not prefix, substring or order.  The resource contents themselves are encrypted
by the SQL store (``careflow.store.keyring``); this module is pure and shared by both stores, so the
SQL store and its in-memory twin answer every query alike (the twin blinds with a key of its own).

What is identifying (see careflow/api/README.md, "Identifiers at rest"):

* of a Patient, RelatedPerson or Person: ``identifier``, ``name``, ``birthDate``, ``address``,
  ``telecom``, ``contact`` - every search parameter whose path starts at one of them;
* the national number (SSIN/INSZ) in the ``identifier`` of any resource type (a Practitioner's too).

A Practitioner's name, NIHDI number, practice address and work telecom are not blinded: they are
published in the NIHDI register, and care teams look colleagues up by the first letters of a name.
Their resources are still encrypted at rest like every other resource.

How each kind of identifying parameter searches:

* token (identifier, telecom): exact ``[system|]code``; the system stays in clear, so ``system|``
  (every patient with an SSIN) still works;
* string (name, family, given, address...): the whole normalised (case- and accent-folded) part, or
  any whole word of it, instead of a prefix; ``:exact`` compares the part as written; ``:contains``
  and ``_sort`` are refused (400);
* birthdate: the birth *year* stays in clear (a year-wide date row) for age-based population queries
  and ``_sort``, so year-precision comparisons (``birthdate=1950``, ``lt1950``, ``ge1940``) are
  exact; a month or day (``birthdate=1950-03-04``, ``eq1950-03``) matches through blind tokens; a
  range or prefix finer than a year (``ge1950-03-04``) is refused (400).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Callable

from careflow.errors import InvalidSearch
from careflow.fhir.search_index import DateRow, IndexRows, StringRow, TokenRow
from careflow.fhir.search_params import SearchParam, get_param, indexed_params
from careflow.fhir.search_query import Criterion, DateValue, SearchQuery, StringValue, TokenValue, Value
from careflow.fhir.search_values import DATE_MAX
from careflow.naming import SSIN

# resource elements holding direct identifiers of a person who receives care (or is close to one)
IDENTIFYING_ELEMENTS: dict[str, frozenset[str]] = {
    rtype: frozenset({"identifier", "name", "birthDate", "address", "telecom", "contact"})
    for rtype in ("Patient", "RelatedPerson", "Person")
}
# identifier systems blinded wherever they appear
NATIONAL_NUMBER_SYSTEMS: frozenset[str] = frozenset({SSIN})
# system of the blind tokens that stand for a birth month or day (idx_token rows under "birthdate")
BLIND_DATE_SYSTEM = "urn:careflow:blind-date"
BLIND_LENGTH = 32  # hex characters: 128 bits of HMAC-SHA256

Blind = Callable[[str, str], str]  # (domain, value) -> fixed-length keyed hash


def hmac_blind(key: bytes) -> Blind:
    """The blind-index function for ``key``: HMAC-SHA256 over ``domain NUL value``, 32 hex digits.

    The domain (type, parameter, column) keeps equal values of different parameters apart, so a name
    that is also a city does not link two index rows.  Memoised: a region repeats the same given
    names, streets and birth dates endlessly (the cache lives in memory only, like the values)."""
    if len(key) < 32:
        raise ValueError("a blind-index key has at least 32 bytes")

    @lru_cache(maxsize=65536)
    def blind(domain: str, value: str) -> str:
        return hmac.digest(key, f"{domain}\x00{value}".encode(), "sha256")[: BLIND_LENGTH // 2].hex()

    return blind


@lru_cache(maxsize=None)
def _protected(rtype: str, name: str) -> str | None:
    """'all' when every value of the parameter is identifying, 'national' when only national-number
    identifiers are (an ``identifier`` parameter of another type), else None."""
    param = get_param(rtype, name)
    if param is None or param.column or param.type not in ("token", "string", "date"):
        return None
    elements = IDENTIFYING_ELEMENTS.get(rtype, frozenset())
    heads = {re.split(r"[.\[:]", path, maxsplit=1)[0] for path in param.paths}  # telecom[system=email] -> telecom
    if heads & elements:
        return "all"
    if param.type == "token" and "identifier" in heads:
        return "national"
    return None


@lru_cache(maxsize=None)
def _identifying_params(rtype: str) -> frozenset[str]:
    """Names of the parameters of ``rtype`` whose index rows may need blinding."""
    return frozenset(p.name for p in indexed_params(rtype) if _protected(rtype, p.name))


def is_identifying(rtype: str, param: SearchParam) -> bool:
    """Whether every value of ``param`` is a direct identifier (blinded in the index)."""
    return _protected(rtype, param.name) == "all"


def _precision(low: datetime, high: datetime) -> str | None:
    """'year' | 'month' | 'day' when the inclusive range is exactly one calendar unit, else None."""
    if low.time() != datetime.min.time() or high >= DATE_MAX or low.year >= 9999:
        return None
    end = high + timedelta(microseconds=1)
    if low.month == 1 and low.day == 1 and end == datetime(low.year + 1, 1, 1):
        return "year"
    next_month = datetime(low.year + 1, 1, 1) if low.month == 12 else datetime(low.year, low.month + 1, 1)
    if low.day == 1 and end == next_month:
        return "month"
    if end == low + timedelta(days=1):
        return "day"
    return None


def _year_range(low: datetime, high: datetime) -> tuple[datetime, datetime]:
    start = datetime(low.year, 1, 1)
    end = datetime(high.year + 1, 1, 1) - timedelta(microseconds=1) if high.year < 9999 else high
    return start, end


class Protection:
    """How one store keeps direct identifiers out of its index rows and conditional-create keys.

    ``blind`` None is the plaintext baseline (benchmarks measure against it): rows and queries pass
    unchanged and conditional-create keys are plain SHA-256."""

    def __init__(self, blind: Blind | None) -> None:
        self._blind = blind
        self._memo: dict[tuple[str, str, Any], tuple[tuple[str, Any], ...]] = {}

    @property
    def enabled(self) -> bool:
        return self._blind is not None

    # --- write side ------------------------------------------------------------------------------
    def index(self, rtype: str, rows: IndexRows) -> IndexRows:
        """Index rows with identifying values replaced by their blind form (input untouched)."""
        blind = self._blind
        if blind is None or not (rows.token or rows.string or rows.date) or not _identifying_params(rtype):
            return rows
        out: dict[str, list[Any]] = {"token": [], "string": [], "date": []}
        memo = self._memo
        for kind in ("token", "string", "date"):
            for r in getattr(rows, kind):
                key = (rtype, kind, r)
                done = memo.get(key)
                if done is None:
                    if len(memo) > 50_000:  # bounded: a region repeats values, but not without end
                        memo.clear()
                    done = memo[key] = self._row(rtype, kind, r)
                for k, row in done:
                    out[k].append(row)
        return IndexRows(
            token=list(dict.fromkeys(out["token"])), reference=rows.reference, date=list(dict.fromkeys(out["date"])),
            string=list(dict.fromkeys(out["string"])), quantity=rows.quantity, uri=rows.uri,
        )

    def _row(self, rtype: str, kind: str, r: Any) -> tuple[tuple[str, Any], ...]:
        """The stored form of one extracted row: itself, or its blind rows (memoised by ``index``)."""
        blind = self._blind
        assert blind is not None
        how = _protected(rtype, r.param)
        if kind == "token":
            if how == "all" or (how == "national" and r.system in NATIONAL_NUMBER_SYSTEMS):
                return (("token", TokenRow(r.param, r.system, blind(f"{rtype}|{r.param}|token", r.code))),)
            return (("token", r),)
        if how != "all":
            return ((kind, r),)
        if kind == "string":
            exact = blind(f"{rtype}|{r.param}|exact", r.exact)
            words = r.norm.split(" ")
            parts = [r.norm] + words if len(words) > 1 else [r.norm]
            return tuple(("string", StringRow(r.param, blind(f"{rtype}|{r.param}|norm", p), exact)) for p in parts)
        out: list[tuple[str, Any]] = [("date", DateRow(r.param, *_year_range(r.low, r.high)))]
        precision = _precision(r.low, r.high)
        if precision in ("month", "day"):
            out.append(("token", TokenRow(r.param, BLIND_DATE_SYSTEM, blind(f"{rtype}|{r.param}|date", f"{r.low:%Y-%m}"))))
        if precision == "day":
            out.append(("token", TokenRow(r.param, BLIND_DATE_SYSTEM, blind(f"{rtype}|{r.param}|date", f"{r.low:%Y-%m-%d}"))))
        return tuple(out)

    def condition_key(self, query: SearchQuery) -> str:
        """Fixed-length key of a conditional create's criteria: keyed, so the condition_key table
        cannot be brute-forced back to the national number or name it was created with."""
        text = query.canonical_key()
        if self._blind is None:
            return hashlib.sha256(text.encode()).hexdigest()
        return self._blind(f"{query.type}|condition", text)

    # --- read side -------------------------------------------------------------------------------
    def query(self, query: SearchQuery) -> SearchQuery:
        """The query as it must run against protected rows; InvalidSearch for what they cannot answer."""
        if self._blind is None:
            return query
        for key in query.sort:
            if key.param.type != "date" and _protected(query.type, key.param.name):
                raise InvalidSearch("_sort", f"cannot sort on '{key.param.name}': its values are kept encrypted")
        criteria = tuple(self._criterion(query.type, c) for c in query.criteria)
        if criteria == query.criteria:
            return query
        return dataclasses.replace(query, criteria=criteria)

    def _criterion(self, rtype: str, c: Criterion) -> Criterion:
        if c.chain:
            chain = tuple((target, self._criterion(target, inner)) for target, inner in c.chain)
            return c if chain == c.chain else dataclasses.replace(c, chain=chain)
        if c.param.column or c.missing is not None:
            return c
        how = _protected(rtype, c.param.name)
        if how is None:
            return c
        blind = self._blind
        assert blind is not None
        name = c.param.name
        if how == "national":
            values: list[Value] = []
            for v in c.values:
                assert isinstance(v, TokenValue)
                if v.code is not None and v.system in NATIONAL_NUMBER_SYSTEMS:
                    values.append(TokenValue(v.system, blind(f"{rtype}|{name}|token", v.code)))
                    continue
                values.append(v)
                if v.code is not None and v.system is None:  # any system: the code may be a national number
                    for system in sorted(NATIONAL_NUMBER_SYSTEMS):
                        values.append(TokenValue(system, blind(f"{rtype}|{name}|token", v.code)))
            return dataclasses.replace(c, values=tuple(values))
        kind = c.param.type
        if kind == "token":
            return dataclasses.replace(c, values=tuple(
                TokenValue(v.system, None if v.code is None else blind(f"{rtype}|{name}|token", v.code))
                for v in c.values if isinstance(v, TokenValue)))
        if kind == "string":
            if c.modifier == "contains":
                raise InvalidSearch(f"{name}:contains", "is not offered: the values are kept encrypted "
                                    "(search a whole name part, e.g. family=peeters)")
            column = "exact" if c.modifier == "exact" else "norm"
            # a fixed-length blind value makes the default prefix match an equality on both stores
            return dataclasses.replace(c, values=tuple(
                StringValue(blind(f"{rtype}|{name}|{column}", v.text)) for v in c.values if isinstance(v, StringValue)))
        return self._date_criterion(rtype, c)

    def _date_criterion(self, rtype: str, c: Criterion) -> Criterion:
        blind = self._blind
        assert blind is not None
        name = c.param.name
        years: list[Value] = []
        tokens: list[Value] = []
        for v in c.values:
            assert isinstance(v, DateValue)
            precision = _precision(v.low, v.high)
            if precision == "year":
                years.append(v)
            elif precision in ("month", "day") and v.prefix == "eq":
                text = f"{v.low:%Y-%m}" if precision == "month" else f"{v.low:%Y-%m-%d}"
                tokens.append(TokenValue(BLIND_DATE_SYSTEM, blind(f"{rtype}|{name}|date", text)))
            else:
                raise InvalidSearch(name, "only a year is compared in ranges (e.g. ge1950, lt1960); a month or "
                                    "day matches exactly (e.g. 1950-03-04): the full date is kept encrypted")
        if years and tokens:
            raise InvalidSearch(name, "do not mix years and exact dates in one parameter; repeat the parameter")
        if years:
            return c
        return dataclasses.replace(c, param=dataclasses.replace(c.param, type="token"), values=tuple(tokens))


__all__ = ["BLIND_DATE_SYSTEM", "IDENTIFYING_ELEMENTS", "NATIONAL_NUMBER_SYSTEMS", "Protection", "hmac_blind",
           "is_identifying"]
