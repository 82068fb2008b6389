"""FHIR search query strings parsed into a typed ``SearchQuery`` that every store engine executes.

Pure (no SQLAlchemy): the API parses the query once, the SQL and in-memory engines interpret the same
structure, so a parameter means the same thing in both.  Semantics, per FHIR R4 search:

* repeated parameters AND, comma-separated values OR;
* token ``system|code``, ``code``, ``|code`` (no system), ``system|`` (any code of the system);
  modifiers ``:not``, ``:missing``;
* reference ``Type/id``, ``id``, absolute URL (its ``Type/id`` tail); ``:Type`` modifier; one level of
  chaining (``patient.identifier=sys|val``, ``subject:Patient.name=x``);
* date with prefixes eq ne gt lt ge le sa eb ap at the precision written (a value without a zone is UTC);
* string: case- and accent-insensitive prefix; ``:exact``, ``:contains``;
* quantity/number with prefixes and the written precision (``5.4`` means [5.35, 5.45)),
  ``value|system|code``;
* uri: exact, ``:below`` (prefix); a canonical's ``|version`` suffix is ignored on both sides;
* canonical references (``CarePlan?instantiates-canonical``): an absolute URL matches the canonical
  (``|version`` ignored), ``Type/id`` its tail, ``:below`` a URL prefix;
* ``:missing=true|false`` on every indexed parameter;
* a standard R4 parameter careflow does not support (``search_params.refusal``) is refused, never
  ignored: ignoring it would widen the answer;
* ``_id``, ``_lastUpdated``, ``_count``, ``_offset``, ``_sort``, ``_include``, ``_revinclude`` (with
  ``:iterate``), ``_summary=count``, ``_total=none|estimate|accurate``, ``_cursor`` (keyset paging,
  ``careflow.fhir.search_cursor``).

Totals (``_total``, FHIR leaves the default to the server): absent, a page reached without a cursor
counts its matches up to ``TOTAL_CAP`` and gives the exact total when there are no more than that (no
total beyond: counting thousands of matches on every page is what made deep worklists slow); a page
reached by a cursor gives none.  ``accurate`` always counts them all; ``estimate`` is exact up to the
cap and the store's estimate beyond it; ``none`` never counts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, Union

from careflow.errors import InvalidSearch, UnsupportedSearch
from careflow.fhir.search_cursor import Cursor, decode
from careflow.fhir.search_params import (
    CONTROL_PARAMS,
    REGISTRY,
    SearchParam,
    get_param,
    is_resource_type_name,
    refusal,
)
from careflow.fhir.search_values import (
    date_range,
    decimal_precision_range,
    normalise_string,
    parse_decimal,
    parse_reference,
    split_unescaped,
    unescape,
)

Prefix = Literal["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]
PREFIXES: tuple[str, ...] = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")

_PLAIN_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

DEFAULT_COUNT = 50
MAX_COUNT = 1000
# the work one search may ask for: a thousand OR'ed values or ANDed parameters made SQLite give up
# ("Expression tree is too large") and would make any store slow; an offset beyond a 32-bit count
# could never match anything and overflowed SQLite's integers
MAX_PARAMS = 100
MAX_VALUES = 100
MAX_OFFSET = 2**31 - 1
# the default total is exact up to this many matches and left out beyond (see the module docstring)
TOTAL_CAP = 1000


@dataclass(frozen=True)
class TokenValue:
    """``system`` None: any system; "" : no system.  ``code`` None: any code of ``system``."""

    system: str | None
    code: str | None


@dataclass(frozen=True)
class ReferenceValue:
    """``type`` None: any target type.  ``url`` is set for references without a Type/id tail (urn:uuid)."""

    type: str | None
    id: str | None
    url: str | None = None


@dataclass(frozen=True)
class DateValue:
    prefix: Prefix
    low: datetime  # inclusive, naive UTC
    high: datetime  # inclusive, naive UTC


@dataclass(frozen=True)
class StringValue:
    text: str  # normalised (default, :contains) or as written (:exact)


@dataclass(frozen=True)
class NumberValue:
    """Quantity or number.  ``low``/``high`` bound the written precision (used by eq/ne)."""

    prefix: Prefix
    value: Decimal
    low: Decimal
    high: Decimal
    system: str | None = None  # quantity only; None = any
    code: str | None = None  # quantity only; matches code or unit; None = any


@dataclass(frozen=True)
class UriValue:
    url: str


Value = Union[TokenValue, ReferenceValue, DateValue, StringValue, NumberValue, UriValue]


@dataclass(frozen=True)
class Criterion:
    """One parameter occurrence: its values OR together.

    ``missing`` is set (and ``values`` empty) for ``:missing``.  For a chained parameter ``chain`` holds,
    per target type, the criterion the referenced resource must meet (``values`` empty).
    """

    param: SearchParam
    modifier: str | None = None
    values: tuple[Value, ...] = ()
    missing: bool | None = None
    chain: tuple[tuple[str, "Criterion"], ...] = ()


@dataclass(frozen=True)
class SortKey:
    param: SearchParam
    descending: bool = False


@dataclass(frozen=True)
class Include:
    """``_include`` / ``_revinclude``: ``source`` type (or "*"), reference ``param`` (None: every
    reference parameter of the source), optional ``target`` type, ``iterate`` to follow recursively."""

    source: str
    param: str | None
    target: str | None = None
    iterate: bool = False


@dataclass(frozen=True)
class SearchQuery:
    type: str
    criteria: tuple[Criterion, ...] = ()
    sort: tuple[SortKey, ...] = ()
    count: int = DEFAULT_COUNT
    offset: int = 0
    includes: tuple[Include, ...] = ()
    revincludes: tuple[Include, ...] = ()
    summary: str | None = None  # _summary as given ("count" -> total only)
    total: bool = True  # False for _total=none
    total_mode: str | None = None  # _total as given: none | estimate | accurate; None when absent
    after: Cursor | None = None  # _cursor: the page starts after this match
    ignored: tuple[str, ...] = ()  # parameter names skipped in lenient mode (report them)
    raw: tuple[tuple[str, str], ...] = ()  # the filter parameters as given, for links and conditional keys
    passthrough: tuple[tuple[str, str], ...] = field(default=(), compare=False)  # _format, _elements, ...

    @property
    def total_only(self) -> bool:
        return self.summary == "count" or self.count == 0

    def canonical_key(self) -> str:
        """The canonical form of the parsed filter criteria: two spellings of one condition (parameter
        order, ``%7C`` or ``|``, URL escaping, ``\\,`` escapes, the order or repetition of OR values and
        of repeated AND parameters, letter case a string search folds anyway) give one key, so
        conditional creates that claim (type, key) rows collide however their criteria are written.
        JSON of sorted, de-duplicated criteria: injective, so different conditions never share a key."""
        return json.dumps(sorted({_criterion_key(c) for c in self.criteria}), separators=(",", ":"),
                          ensure_ascii=False)

    def criteria_text(self) -> str:
        """The filter parameters as written (for messages)."""
        return "&".join(f"{n}={v}" for n, v in self.raw)

    def query_string(self) -> str:
        """The filter and result parameters back as a query string (without _offset), for Bundle links."""
        from urllib.parse import urlencode

        pairs = list(self.raw)
        if self.sort:
            pairs.append(("_sort", ",".join(("-" if k.descending else "") + k.param.name for k in self.sort)))
        for inc in self.includes:
            pairs.append(("_include:iterate" if inc.iterate else "_include", _include_text(inc)))
        for inc in self.revincludes:
            pairs.append(("_revinclude:iterate" if inc.iterate else "_revinclude", _include_text(inc)))
        if self.count != DEFAULT_COUNT:
            pairs.append(("_count", str(self.count)))
        if self.summary:
            pairs.append(("_summary", self.summary))
        if self.total_mode is not None:
            pairs.append(("_total", self.total_mode))
        return urlencode(pairs)

    @property
    def total_wanted(self) -> str:
        """What total this page counts: "none", "capped" (exact up to TOTAL_CAP), "estimate", "accurate"."""
        if self.total_only:
            return "accurate"
        mode = self.total_mode
        if mode is None:
            return "none" if self.after is not None else "capped"
        return mode


def _value_key(v: Value) -> str:
    """One parsed value as canonical text (a JSON array tagged by the value kind)."""
    if isinstance(v, TokenValue):
        parts: list[object] = ["token", v.system, v.code]
    elif isinstance(v, ReferenceValue):
        parts = ["reference", v.type, v.id, v.url]
    elif isinstance(v, DateValue):
        parts = ["date", v.prefix, v.low.isoformat(), v.high.isoformat()]
    elif isinstance(v, StringValue):
        parts = ["string", v.text]
    elif isinstance(v, NumberValue):
        parts = ["number", v.prefix, str(v.value), str(v.low), str(v.high), v.system, v.code]
    else:
        parts = ["uri", v.url]
    return json.dumps(parts, separators=(",", ":"), ensure_ascii=False)


def _criterion_key(c: Criterion) -> str:
    """One criterion as canonical text: its values are a set (OR), a chain's targets sorted."""
    return json.dumps(
        [c.param.name, c.modifier, c.missing, sorted({_value_key(v) for v in c.values}),
         sorted([target, _criterion_key(inner)] for target, inner in c.chain)],
        separators=(",", ":"), ensure_ascii=False,
    )


def _include_text(inc: Include) -> str:
    text = f"{inc.source}:{inc.param or '*'}"
    return text + (f":{inc.target}" if inc.target else "")


def by_id(rtype: str, *ids: str) -> SearchQuery:
    """Convenience: ``Type?_id=a,b``."""
    return parse_search(rtype, [("_id", ",".join(ids))], strict=True)


# --- parser -------------------------------------------------------------------------------------

_MODIFIERS: dict[str, frozenset[str]] = {
    "token": frozenset({"missing", "not"}),
    "reference": frozenset({"missing"}),
    "date": frozenset({"missing"}),
    "string": frozenset({"missing", "exact", "contains"}),
    "quantity": frozenset({"missing"}),
    "number": frozenset({"missing"}),
    "uri": frozenset({"missing", "below"}),
}


def parse_search(rtype: str, params: list[tuple[str, str]] | tuple[tuple[str, str], ...], strict: bool = False) -> SearchQuery:
    """Parse query parameters (in order, repeats kept) for a search of ``rtype``.

    Standard R4 parameters careflow does not support always raise InvalidSearch (ignoring one would widen
    the answer).  Names R4 does not define raise when ``strict`` (``Prefer: handling=strict``), otherwise
    they are skipped and named in ``SearchQuery.ignored``.  Bad values and unsupported modifiers always
    raise.
    """
    if not is_resource_type_name(rtype):
        raise InvalidSearch("_type", f"'{rtype}' is not a resource type name")
    criteria: list[Criterion] = []
    sort: tuple[SortKey, ...] = ()
    count = DEFAULT_COUNT
    offset = 0
    includes: list[Include] = []
    revincludes: list[Include] = []
    summary: str | None = None
    total = True
    total_mode: str | None = None
    cursor_text: str | None = None
    ignored: list[str] = []
    raw: list[tuple[str, str]] = []
    passthrough: list[tuple[str, str]] = []
    check_request_size(params)
    for name, value in params:
        if name in CONTROL_PARAMS:
            if name == "_count":
                count = min(whole_number(name, value), MAX_COUNT)
            elif name == "_offset":
                offset = whole_number(name, value, MAX_OFFSET)
            elif name == "_sort":
                sort = _parse_sort(rtype, value)
            elif name in ("_include", "_include:iterate"):
                inc = _parse_include(rtype, name, value, reverse=False, strict=strict)
                if inc is None:
                    ignored.append(f"{name}={value}")
                else:
                    includes.append(inc)
            elif name in ("_revinclude", "_revinclude:iterate"):
                inc = _parse_include(rtype, name, value, reverse=True, strict=strict)
                if inc is None:
                    ignored.append(f"{name}={value}")
                else:
                    revincludes.append(inc)
            elif name == "_summary":
                summary = value
            elif name == "_total":
                if value not in ("none", "estimate", "accurate"):
                    raise InvalidSearch(name, "must be none, estimate or accurate")
                total = value != "none"
                total_mode = value
            elif name == "_cursor":
                cursor_text = value
            else:
                passthrough.append((name, value))
            continue
        if value == "":
            continue  # FHIR: empty parameters are ignored
        crit = _parse_criterion(rtype, name, value, strict)
        if crit is None:
            ignored.append(name)
            continue
        criteria.append(crit)
        raw.append((name, value))
    after: Cursor | None = None
    if cursor_text is not None:
        if offset:
            raise InvalidSearch("_cursor", "a cursor already says where the page starts: leave out _offset")
        after = decode(cursor_text, len(sort))
        _check_cursor_kinds(sort, after)
    return SearchQuery(
        type=rtype, criteria=tuple(criteria), sort=sort, count=count, offset=offset,
        includes=tuple(includes), revincludes=tuple(revincludes), summary=summary, total=total,
        total_mode=total_mode, after=after, ignored=tuple(ignored), raw=tuple(raw), passthrough=tuple(passthrough),
    )


def _check_cursor_kinds(sort: tuple[SortKey, ...], after: Cursor) -> None:
    """A cursor's values must be of the kinds its sort keys compare (a forged one could otherwise
    make the database compare a date with text)."""
    for key, value in zip(sort, after.values):
        if value is None:
            continue
        param = key.param
        if param.column == "last_updated" or param.type == "date":
            ok = isinstance(value, datetime) and value.tzinfo is None
        elif param.type in ("quantity", "number"):
            ok = isinstance(value, float)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise InvalidSearch("_cursor", "is not a cursor of this search: follow the next link as given")


def check_request_size(params: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> None:
    """Refuse a search (or history) request that asks for more work than any client needs, or that
    carries a NUL (PostgreSQL refuses it in text, SQLite compares it wrongly)."""
    if len(params) > MAX_PARAMS:
        raise InvalidSearch("_query", f"{len(params)} parameters: at most {MAX_PARAMS} are accepted")
    for name, value in params:
        if "\x00" in name or "\x00" in value:
            raise InvalidSearch(name.replace("\x00", "") or "_query", "a NUL character is not allowed in a search")
        values = value.count(",") + 1
        if values > MAX_VALUES:
            raise InvalidSearch(name, f"{values} values: at most {MAX_VALUES} per parameter are accepted")


def whole_number(name: str, value: str, upper: int | None = None) -> int:
    """A paging parameter's value (``_count``, ``_offset``): ASCII digits only (``int`` also takes
    ``²``-like digits, ``1_000`` and spaces), at most ``upper``; else InvalidSearch naming it."""
    digits = value[1:] if value[:1] == "-" else value
    if not (digits.isascii() and digits.isdigit()):
        raise InvalidSearch(name, f"'{value}' is not a whole number")
    n = int(value)
    if n < 0:
        raise InvalidSearch(name, "must not be negative")
    if upper is not None and n > upper:
        raise InvalidSearch(name, f"must be at most {upper}")
    return n


def _parse_sort(rtype: str, value: str) -> tuple[SortKey, ...]:
    keys: list[SortKey] = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        desc = part.startswith("-")
        pname = part[1:] if desc else part
        param = get_param(rtype, pname)
        if param is None:
            raise InvalidSearch("_sort", f"'{pname}' is not a search parameter of {rtype}")
        if param.type == "reference":
            raise InvalidSearch("_sort", f"cannot sort on reference parameter '{pname}'")
        keys.append(SortKey(param, desc))
    return tuple(keys)


def _parse_include(rtype: str, name: str, value: str, *, reverse: bool, strict: bool) -> Include | None:
    iterate = name.endswith(":iterate")
    if value == "*":
        return Include("*" if reverse else rtype, None, None, iterate)
    parts = value.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidSearch(name, f"'{value}' is not Type:param[:targetType]")
    source, pname = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if pname == "*":
        return Include(source, None, target, iterate)
    sources = list(REGISTRY) if source == "*" else [source]
    found = [s for s in sources if (p := get_param(s, pname)) is not None and p.type == "reference"]
    if not found:
        if strict:
            raise InvalidSearch(name, f"'{pname}' is not a reference parameter of {source}")
        return None
    return Include(source, pname, target, iterate)


def _parse_criterion(rtype: str, name: str, value: str, strict: bool) -> Criterion | None:
    if "." in name:
        return _parse_chain(rtype, name, value, strict)
    pname, _, modifier = name.partition(":")
    param = _lookup(rtype, pname, strict)
    if param is None:
        return None
    mod = modifier or None
    target_type: str | None = None
    if mod == "below" and param.canonical:
        pass  # canonical references: URL prefix, as for uri parameters
    elif mod is not None and mod not in _MODIFIERS[param.type]:
        if param.type == "reference" and is_resource_type_name(mod):
            target_type = mod
        else:
            raise InvalidSearch(name, f"modifier ':{mod}' is not supported on {param.type} parameters")
    if mod == "missing":
        if param.column:
            raise InvalidSearch(name, f":missing is not supported on {pname}")
        if value not in ("true", "false"):
            raise InvalidSearch(name, ":missing takes true or false")
        return Criterion(param, mod, (), value == "true")
    values = tuple(_parse_value(param, mod, target_type, v, name) for v in split_unescaped(value, ","))
    return Criterion(param, mod, values)


def _lookup(rtype: str, pname: str, strict: bool) -> SearchParam | None:
    """The supported parameter; a standard one careflow refuses is a 400 whatever the handling."""
    param = get_param(rtype, pname)
    if param is not None:
        return param
    reason = refusal(rtype, pname)
    if reason is not None:
        raise UnsupportedSearch(pname, f"{rtype}?{pname} is an R4 search parameter careflow does not support: {reason}")
    if strict:
        raise InvalidSearch(pname, f"unknown search parameter for {rtype}")
    return None


def _parse_chain(rtype: str, name: str, value: str, strict: bool) -> Criterion | None:
    head, _, inner = name.partition(".")
    if "." in inner:
        raise InvalidSearch(name, "only one level of chaining is supported")
    pname, _, type_mod = head.partition(":")
    param = _lookup(rtype, pname, strict)
    if param is None:
        return None
    if param.type != "reference":
        raise InvalidSearch(name, f"'{pname}' is not a reference parameter and cannot be chained")
    targets = (type_mod,) if type_mod else param.targets
    if not targets:
        raise InvalidSearch(name, f"'{pname}' may point to any type: name one, e.g. {pname}:Patient.{inner}")
    chain: list[tuple[str, Criterion]] = []
    for target in targets:
        inner_name = inner.partition(":")[0]
        inner_param = get_param(target, inner_name)
        if inner_param is None:
            if refusal(target, inner_name) is not None:
                _lookup(target, inner_name, True)  # raises: skipping a target would narrow the answer
            continue
        crit = _parse_criterion(target, inner, value, strict=True)
        assert crit is not None
        chain.append((target, crit))
    if not chain:
        if strict:
            raise InvalidSearch(name, f"'{inner}' is not a search parameter of {', '.join(targets)}")
        return None
    return Criterion(param, type_mod or None, (), None, tuple(chain))


def _split_prefix(text: str) -> tuple[Prefix, str]:
    if len(text) > 2 and text[:2] in PREFIXES and not text[:2].isdigit():
        return text[:2], text[2:]  # type: ignore[return-value]
    return "eq", text


def _parse_value(param: SearchParam, mod: str | None, target_type: str | None, text: str, name: str) -> Value:
    kind = param.type
    if kind == "token":
        parts = split_unescaped(text, "|")
        if len(parts) == 1:
            return TokenValue(None, unescape(parts[0]))
        if len(parts) != 2:
            raise InvalidSearch(name, f"'{text}' is not [system|]code")
        system, code = unescape(parts[0]), unescape(parts[1])
        if not system and not code:
            raise InvalidSearch(name, "empty token")
        return TokenValue(system, code or None)
    if kind == "reference":
        raw = unescape(text)
        if param.canonical and (mod == "below" or ":" in raw):
            return ReferenceValue(None, None, raw.split("|", 1)[0])  # a canonical URL (its version cut)
        if _PLAIN_ID.match(raw):
            return ReferenceValue(target_type, raw)
        rtype, rid = parse_reference(raw)
        if rtype is None:
            return ReferenceValue(None, None, raw)
        if target_type and rtype != target_type:
            raise InvalidSearch(name, f"'{raw}' is not a {target_type} reference")
        return ReferenceValue(rtype, rid)
    if kind == "date":
        prefix, rest = _split_prefix(text)
        rng = date_range(rest)
        if rng is None:
            raise InvalidSearch(name, f"'{text}' is not a FHIR date (YYYY[-MM[-DD[Thh:mm[:ss][zone]]]])")
        return DateValue(prefix, rng[0], rng[1])
    if kind == "string":
        raw = unescape(text)
        return StringValue(raw if mod == "exact" else normalise_string(raw))
    if kind in ("quantity", "number"):
        prefix, rest = _split_prefix(text)
        parts = split_unescaped(rest, "|") if kind == "quantity" else [rest]
        if len(parts) not in (1, 3):
            raise InvalidSearch(name, f"'{text}' is not [prefix]number[|system|code]")
        number = parse_decimal(parts[0])
        if number is None:
            raise InvalidSearch(name, f"'{parts[0]}' is not a number")
        low, high = decimal_precision_range(number)
        unit_system = unescape(parts[1]) or None if len(parts) == 3 else None
        unit_code = unescape(parts[2]) or None if len(parts) == 3 else None
        return NumberValue(prefix, number, low, high, unit_system, unit_code)
    if kind == "uri":
        return UriValue(unescape(text).split("|", 1)[0])
    raise InvalidSearch(name, f"unsupported parameter type {kind}")  # pragma: no cover - registry is closed


__all__ = [
    "Criterion", "DateValue", "Include", "NumberValue", "ReferenceValue", "SearchQuery", "SortKey",
    "StringValue", "TokenValue", "UriValue", "Value", "by_id", "parse_search",
]
