"""The take-home care plan as an accessible PDF (PDF/UA-1), made from the same HTML as the printable page.

WeasyPrint lays out the HTML with the print style sheet and writes a tagged PDF: the document language
from ``<html lang>``, the title from ``<title>`` (shown instead of the file name), real text in
embedded fonts, and a structure tree of headings, lists and tables that a screen reader follows. It
needs Pango from the operating system; a server without it answers with an HTML page saying so rather
than failing, so the printable page stays the way to print.
"""

from __future__ import annotations

from pathlib import Path

from careflow.errors import CareflowError

STYLE = Path(__file__).resolve().parent / "static" / "careflow.css"
VARIANT = "pdf/ua-1"


class PdfUnavailable(CareflowError):
    """This server cannot make PDFs (WeasyPrint or the system's Pango libraries are missing)."""

    http_status = 503


def pdf_of(html: str) -> bytes:
    """A tagged PDF/UA-1 document of a complete HTML page (language and title taken from the page)."""
    try:
        from weasyprint import CSS, HTML
        from weasyprint.urls import URLFetcher
    except (ImportError, OSError) as exc:  # OSError: Pango's shared libraries are not installed
        raise PdfUnavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    # the plan's HTML refers to nothing outside itself: a fetcher that allows no protocol at all
    document = HTML(string=html, url_fetcher=URLFetcher(allowed_protocols=()), media_type="print")
    pdf = document.write_pdf(stylesheets=[CSS(string=STYLE.read_text(encoding="utf-8"))], pdf_variant=VARIANT)
    if not pdf:
        raise PdfUnavailable("WeasyPrint wrote no PDF")
    return bytes(pdf)
