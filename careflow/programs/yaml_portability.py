"""Plain YAML scalars that mean one thing in YAML 1.1 and another in YAML 1.2.

careflow reads programmes with ruamel.yaml (YAML 1.2), but authors' tools differ: PyYAML and many
scripts implement YAML 1.1, editors' YAML support (the npm ``yaml`` package) implements 1.2's core
schema. A plain (unquoted) ``yes`` is the boolean true in 1.1 and the text "yes" in 1.2; ``012`` is
10 in 1.1 and 12 in 1.2; ``1:30`` is 90 (base 60) in 1.1; ``2026-01-31`` is a date in 1.1 (and in
ruamel.yaml) but text in the 1.2 core schema; ``<<`` merges mappings only in 1.1. A programme that
reads differently in another tool is a trap for the next author, so the loader warns about each one.

How: every plain scalar (values and keys) is resolved twice, once by YAML 1.1's implicit rules (the
regular expressions of the 1.1 type repository, as PyYAML applies them) and once by the 1.2 core
schema; where the two results differ, a warning names the line and the fix. Quoted scalars are text
in both, so quoting is always a fix.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent, ScalarEvent

# --- YAML 1.1 (yaml.org/type/*.html, as PyYAML's resolver applies them) ---
_BOOL_11 = re.compile(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")
_INT_11 = re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+"
                     r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$")
_FLOAT_11 = re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
                       r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_NULL_11 = re.compile(r"^(?:~|null|Null|NULL|)$")
_TIMESTAMP_11 = re.compile(r"^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}"
                           r":[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)$")

# --- YAML 1.2 core schema (yaml.org/spec/1.2.2, 10.3) ---
_NULL_12 = re.compile(r"^(?:null|Null|NULL|~|)$")
_BOOL_12 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT_12 = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_12 = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")


def _sexagesimal(text: str) -> float:
    sign = -1 if text.startswith("-") else 1
    value = 0.0
    for part in text.lstrip("+-").split(":"):
        value = value * 60 + float(part)
    return sign * value


def _float(text: str) -> float:
    t = text.replace("_", "").lower()
    if t.lstrip("+-") == ".inf":
        return float("-inf") if t.startswith("-") else float("inf")
    if t == ".nan":
        return float("nan")
    return float(t)


def resolve_11(text: str) -> Any:
    """What a plain scalar is in YAML 1.1: None, bool, int, float, a date/datetime, ``"<<"`` or the text."""
    if text == "<<":
        return ("merge",)
    if _NULL_11.match(text):
        return None
    if _BOOL_11.match(text):
        return text.lower() in ("yes", "true", "on")
    if _INT_11.match(text):
        t = text.replace("_", "")
        if ":" in t:
            return int(_sexagesimal(t))
        sign, digits = (-1, t[1:]) if t.startswith("-") else (1, t.lstrip("+"))
        if digits.startswith("0b"):
            return sign * int(digits[2:], 2)
        if digits.startswith("0x"):
            return sign * int(digits[2:], 16)
        if len(digits) > 1 and digits.startswith("0"):
            return sign * int(digits, 8)
        return sign * int(digits)
    if _FLOAT_11.match(text):
        return _sexagesimal(text.replace("_", "")) if ":" in text else _float(text)
    if _TIMESTAMP_11.match(text):
        return ("timestamp", text)
    return text


def resolve_12(text: str) -> Any:
    """What a plain scalar is in YAML 1.2's core schema (the npm ``yaml`` package's default)."""
    if _NULL_12.match(text):
        return None
    if _BOOL_12.match(text):
        return text.lower() == "true"
    if _INT_12.match(text):
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text)
    if _FLOAT_12.match(text):
        return _float(text)
    return text


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:  # both NaN
        return True
    return type(a) is type(b) and a == b


def _advice(text: str, v11: Any, v12: Any) -> str:
    shown = f"{text!r}"
    if v11 == ("merge",):
        return f"{shown} merges mappings in YAML 1.1 only (YAML 1.2 tools read a key named '<<'): write the keys out"
    if isinstance(v11, tuple) and v11[0] == "timestamp":
        return (f"{shown} is a date in YAML 1.1 (and in ruamel.yaml) but text in YAML 1.2's core schema "
                f"(editors): put it in quotes")
    if isinstance(v11, bool):
        word = "true" if v11 else "false"
        return (f"{shown} is the boolean {word} in YAML 1.1 but the text {shown} in YAML 1.2: write {word} if a "
                f"yes/no is meant, or put the word in quotes")
    if isinstance(v11, (int, float)) and ":" in text:
        return f"{shown} is the number {v11:g} in YAML 1.1 (base 60) but text in YAML 1.2: put it in quotes"
    if isinstance(v11, int) and isinstance(v12, int):
        return f"{shown} is {v11} in YAML 1.1 (octal) but {v12} in YAML 1.2: write {v12} without the leading 0, or put it in quotes"
    number = v11 if isinstance(v11, (int, float)) else v12
    if isinstance(number, (int, float)) and not isinstance(number, bool):
        return (f"{shown} reads as {_kind(v11)} in YAML 1.1 but as {_kind(v12)} in YAML 1.2: write {number!r} if the "
                f"number is meant, or put it in quotes")
    return f"{shown} reads as {_kind(v11)} in YAML 1.1 but as {_kind(v12)} in YAML 1.2: put it in quotes"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, (_dt.date, tuple)):
        return "a date"
    return f"the text {value!r}"


@dataclass(frozen=True)
class Portability:
    """A plain scalar that YAML 1.1 and 1.2 read differently, at 1-based line and column."""

    line: int
    column: int
    text: str
    message: str


def portability_problems(text: str) -> list[Portability]:
    """Every plain, untagged scalar of ``text`` (keys included) whose YAML 1.1 and 1.2 readings differ,
    and every plain scalar inside ``{…}``/``[…]`` with a ``?`` (PyYAML ends a plain scalar there and
    fails to parse the file); empty when the text is not YAML (the loader reports that itself)."""
    found = []
    flow = 0  # depth of flow collections ({...} / [...]) around the current event
    try:
        for event in YAML(typ="rt").parse(text):
            if isinstance(event, CollectionStartEvent):
                flow += 1 if (flow or event.flow_style) else 0
                continue
            if isinstance(event, CollectionEndEvent):
                flow = max(flow - 1, 0)
                continue
            if not isinstance(event, ScalarEvent) or event.style not in (None, ""):
                continue
            raw, mark = event.value, event.start_mark
            if flow and "?" in raw:
                found.append(Portability(mark.line + 1, mark.column + 1, raw,
                                         f"{raw!r} has a '?' inside {{…}} or […], where PyYAML (YAML 1.1) cannot read it: "
                                         f"put the value in quotes"))
                continue
            if event.tag is not None:
                continue
            v11, v12 = resolve_11(raw), resolve_12(raw)
            if not _same(v11, v12):
                found.append(Portability(mark.line + 1, mark.column + 1, raw, _advice(raw, v11, v12)))
    except YAMLError:
        return found
    return found
