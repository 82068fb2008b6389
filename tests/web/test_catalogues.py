"""The pages' message catalogues: every message the templates and pages use is in each language."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.pofile import read_po

from careflow.web.i18n import LANGUAGES

WEB = Path(__file__).resolve().parents[2] / "careflow" / "web"
USED = re.compile(r"""_\(\s*(["'])(.+?)\1\s*[,)]""")


def _used() -> set[str]:
    found: set[str] = set()
    for path in [*WEB.glob("templates/*.html"), *WEB.glob("*.py")]:
        found |= {m.group(2) for m in USED.finditer(path.read_text(encoding="utf-8"))}
    return found


def test_every_message_is_in_every_catalogue() -> None:
    used = _used()
    assert len(used) > 40
    for lang in LANGUAGES:
        with (WEB / "locales" / lang / "LC_MESSAGES" / "careflow.po").open("rb") as f:
            have = {str(m.id) for m in read_po(f) if m.id and m.string}
        assert used <= have, (lang, sorted(used - have))
