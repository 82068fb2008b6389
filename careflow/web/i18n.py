"""The pages' wording, from gettext message catalogues (Dutch by default, English and French).

The catalogues are ``locales/<lang>/LC_MESSAGES/careflow.po``, read with Babel: a new language is a
new catalogue and a reworded message is an edit of one, with no code or stored resource changed.
A message missing from a catalogue falls back to the English source text.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable

from babel.messages.pofile import read_po

LANGUAGES = ("nl", "en", "fr")
DEFAULT = "nl"
_HERE = Path(__file__).resolve().parent / "locales"


@lru_cache(maxsize=None)
def _catalogue(lang: str) -> dict[str, str]:
    path = _HERE / lang / "LC_MESSAGES" / "careflow.po"
    if not path.exists():
        return {}
    with path.open("rb") as f:
        catalog = read_po(f, locale=lang)
    return {str(m.id): str(m.string) for m in catalog if m.id and m.string}


def translator(lang: str) -> Callable[..., str]:
    """``_("Due {day}", day=...)``: the message in ``lang``, formatted with the keyword arguments."""
    table = _catalogue(lang if lang in LANGUAGES else DEFAULT)

    def gettext(message: str, **values: object) -> str:
        text = table.get(message, message)
        return text.format(**values) if values else text

    return gettext


def choose(query: str | None, cookie: str | None) -> str:
    """The language asked for in the URL, else the one chosen before, else Dutch (the region's)."""
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return str(candidate)
    return DEFAULT


def localised(text: object, element: object, lang: str) -> str:
    """A string element in ``lang`` when its ``_element`` carries an HL7 translation to it (careflow
    writes Dutch beside the programme's English), else the text as stored."""
    if isinstance(element, dict):
        for ext in element.get("extension") or ():
            if not isinstance(ext, dict) or not str(ext.get("url", "")).endswith("/translation"):
                continue
            parts = {e.get("url"): e for e in ext.get("extension") or () if isinstance(e, dict)}
            code = str((parts.get("lang") or {}).get("valueCode") or "")
            if code.split("-")[0] == lang and (parts.get("content") or {}).get("valueString"):
                return str(parts["content"]["valueString"])
    return str(text or "")
