"""Text cells of a CSV that a spreadsheet will open: a name is never read as a formula.

Team, practice and neighbourhood names come from directory resources that practices write
themselves, and a CSV's reader is a spreadsheet: a cell starting with ``=``, ``+``, ``-``, ``@`` (or a
tab or carriage return before one) runs as a formula there (OWASP's "CSV injection"), e.g. a link
that sends the sheet's contents elsewhere. Such a cell gets a leading apostrophe, which every
spreadsheet shows as text.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value
