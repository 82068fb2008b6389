"""FHIR datatypes for the PlanDefinition compiler: bilingual text, codings, quantities, durations.

Each writer has a reader beside it that gives back exactly what the writer was given, because the
compiler promises a lossless round trip. Readers go through ``Node``, which knows the element path
it stands on, so a bad input is reported as ``PlanDefinition.action[2].timingTiming.repeat.period:
...`` rather than as a KeyError.
"""

from __future__ import annotations

import re
from typing import Any

from careflow.errors import PlanDefinitionError
from careflow.naming import EXT_ISO_DURATION, EXT_TRANSLATION
from careflow.programs.codes import UCUM
from careflow.programs.durations import parse_duration

Json = dict[str, Any]


# ---------------------------------------------------------------- reading with a path


class Node:
    """A JSON object being read, with the FHIRPath-like path that leads to it."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise PlanDefinitionError(path, f"must be a JSON object, not {_kind(data)}")
        self.data: Json = data
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}"

    def fail(self, message: str, key: str | None = None) -> PlanDefinitionError:
        return PlanDefinitionError(self.at(key) if key else self.path, message)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def string(self, key: str, required: bool = False) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self.fail("is missing", key)
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(f"must be a non-empty string, not {_kind(value)}", key)
        return value

    def req_string(self, key: str) -> str:
        value = self.string(key, required=True)
        assert value is not None
        return value

    def boolean(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.fail(f"must be true or false, not {_kind(value)}", key)
        return value

    def integer(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise self.fail(f"must be a whole number, not {value!r}", key)
        return int(value)

    def number(self, key: str, required: bool = False) -> float | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self.fail("is missing", key)
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(f"must be a number, not {_kind(value)}", key)
        return float(value)

    def child(self, key: str, required: bool = False) -> Node | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise self.fail("is missing", key)
            return None
        return Node(value, self.at(key))

    def req_child(self, key: str) -> Node:
        node = self.child(key, required=True)
        assert node is not None
        return node

    def children(self, key: str) -> list[Node]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(f"must be a JSON array, not {_kind(value)}", key)
        return [Node(item, f"{self.path}.{key}[{i}]") for i, item in enumerate(value)]

    def strings(self, key: str) -> list[str]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail("must be an array of non-empty strings", key)
        return list(value)

    def extensions(self, url: str) -> list[Node]:
        return [e for e in self.children("extension") if e.data.get("url") == url]

    def extension(self, url: str) -> Node | None:
        found = self.extensions(url)
        if len(found) > 1:
            raise PlanDefinitionError(found[1].path, f"extension {url} may appear only once here")
        return found[0] if found else None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}"
    )


# ---------------------------------------------------------------- bilingual text


def translation(lang: str, content: str) -> Json:
    return {"url": EXT_TRANSLATION, "extension": [{"url": "lang", "valueCode": lang}, {"url": "content", "valueString": content}]}


def translations(text: Any) -> list[Json]:
    """The translation extensions of a programme text: Dutch, and French when it has one."""
    return [translation(lang, content) for lang, content in text.translations().items()]


def text_element(name: str, text: Any) -> Json:
    """``title`` + ``_title``: English in the element, Dutch (and French) in the standard
    translation extension."""
    return {name: text.en, f"_{name}": {"extension": translations(text)}}


def read_text(node: Node, name: str, required: bool = False) -> dict[str, str] | None:
    """The ``{"en", "nl"[, "fr"]}`` texts written by :func:`text_element`; None when absent and not required."""
    en = node.string(name, required=required)
    under = node.child(f"_{name}")
    if en is None:
        if under is not None:
            raise node.fail(f"has a translation but no text in {name}", f"_{name}")
        return None
    found: dict[str, str] = {}
    for ext in (under.extensions(EXT_TRANSLATION) if under else []):
        lang = ext.extension("lang")
        content = ext.extension("content")
        code = (lang.string("valueCode") or "").lower().split("-")[0] if lang else ""
        if content and code in ("nl", "fr") and code not in found:
            found[code] = content.req_string("valueString")
    if "nl" not in found:
        raise node.fail(f"has no Dutch translation (a {EXT_TRANSLATION} extension with lang nl)", f"_{name}")
    return {"en": en, **found}


# ---------------------------------------------------------------- codings and quantities


def coding(c: Any) -> Json:
    out: Json = {"system": c.system, "code": c.code}
    if c.display is not None:
        out["display"] = c.display
    return out


def read_coding(node: Node) -> Json:
    out: Json = {"system": node.req_string("system"), "code": node.req_string("code")}
    display = node.string("display")
    if display is not None:
        out["display"] = display
    return out


def concept(*codings: Any) -> Json:
    return {"coding": [coding(c) for c in codings]}


def read_single_coding(node: Node) -> Json:
    """The one coding of a CodeableConcept the compiler wrote with exactly one."""
    codings = node.children("coding")
    if len(codings) != 1:
        raise node.fail(f"must hold exactly one coding, found {len(codings)}", "coding")
    return read_coding(codings[0])


def quantity(q: Any, comparator: str | None = None) -> Json:
    # 53 stays 53 on the wire: a trailing .0 would claim a precision the author never gave
    out: Json = {"value": int(q.value) if float(q.value).is_integer() else q.value}
    if comparator:
        out["comparator"] = comparator
    out.update({"unit": q.unit, "system": UCUM, "code": q.unit})
    return out


def read_quantity(node: Node) -> Json:
    value = node.number("value", required=True)
    unit = node.string("code") or node.string("unit")
    if unit is None:
        raise node.fail("needs a UCUM unit in code (or unit)", "code")
    return {"value": value, "unit": unit}


def number_text(value: float) -> str:
    """A decimal as FHIRPath and people write it: 7 not 7.0, 0.5 not 5e-01."""
    if value == int(value):
        return str(int(value))
    return format(value, "f").rstrip("0")


# ---------------------------------------------------------------- durations

# ISO letter -> (UCUM code, word); FHIR's Timing.periodUnit uses the same codes.
_UNITS = {"Y": ("a", "year"), "M": ("mo", "month"), "W": ("wk", "week"), "D": ("d", "day")}
_LETTER = {code: letter for letter, (code, _) in _UNITS.items()}
_ISO = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?")


def iso_as_quantity(text: str) -> tuple[int, str, bool]:
    """(value, UCUM code, exact) for an ISO duration; exact when rendering it back gives ``text``.

    P3M -> 3 mo and P2W -> 2 wk are exact. Mixed units fold into months or days when they can
    (P1Y6M -> 18 mo, which is not the same text, so not exact) and into approximate days otherwise.
    """
    d = parse_duration(text)
    m = _ISO.fullmatch(text.strip())
    assert m is not None  # parse_duration accepted it
    present = {letter: int(g) for letter, g in zip("YMWD", m.groups()) if g is not None}
    if len(present) == 1:
        (letter, value), = present.items()
    elif set(present) <= {"Y", "M"}:
        letter, value = "M", d.years * 12 + d.months
    elif set(present) <= {"W", "D"}:
        letter, value = "D", d.days
    else:
        letter, value = "D", round(d.approx_days)
    return value, _UNITS[letter][0], f"P{value}{letter}" == text


def iso_from_quantity(value: int, code: str) -> str:
    return f"P{value}{_LETTER[code]}"


def iso_extension(text: str) -> Json:
    return {"url": EXT_ISO_DURATION, "valueString": text}


def duration(text: str) -> Json:
    """A FHIR Duration for an ISO text; the text rides along in an extension when the Duration cannot say it."""
    value, code, exact = iso_as_quantity(text)
    word = _UNITS[_LETTER[code]][1]
    out: Json = {"value": value, "unit": word if value == 1 else f"{word}s", "system": UCUM, "code": code}
    if not exact:
        out["extension"] = [iso_extension(text)]
    return out


def _iso_from_extension(node: Node) -> str | None:
    ext = node.extension(EXT_ISO_DURATION)
    if ext is None:
        return None
    text = ext.req_string("valueString")
    try:
        parse_duration(text)
    except ValueError as e:
        raise ext.fail(str(e), "valueString") from None
    return text


def _iso_from_parts(node: Node, value_key: str, value: int | None, code: str | None, code_key: str) -> str:
    if value is None:
        raise node.fail("is missing", value_key)
    if value < 0:
        raise node.fail("a duration cannot be negative", value_key)
    if code not in _LETTER:
        raise node.fail(
            f"unit {code!r} is not one careflow plans in: use a (years), mo (months), wk (weeks) or d (days)", code_key
        )
    return iso_from_quantity(value, code)


def read_duration(node: Node) -> str:
    """The ISO text of a Duration written by :func:`duration`."""
    exact = _iso_from_extension(node)
    if exact is not None:
        return exact
    if node.has("system") and node.data["system"] != UCUM:
        raise node.fail(f"must be a UCUM unit ({UCUM})", "system")
    return _iso_from_parts(node, "value", node.integer("value"), node.string("code"), "code")


def period_fields(text: str) -> Json:
    """Timing.repeat period/periodUnit (plus ``_period`` with the exact text when needed)."""
    value, code, exact = iso_as_quantity(text)
    out: Json = {"frequency": 1, "period": value, "periodUnit": code}
    if not exact:
        out["_period"] = {"extension": [iso_extension(text)]}
    return out


def read_period(repeat: Node) -> str:
    under = repeat.child("_period")
    exact = _iso_from_extension(under) if under else None
    if exact is not None:
        return exact
    frequency = repeat.integer("frequency")
    if frequency not in (None, 1):
        raise repeat.fail("careflow repeats once per period: frequency must be 1", "frequency")
    return _iso_from_parts(repeat, "period", repeat.integer("period"), repeat.string("periodUnit"), "periodUnit")
