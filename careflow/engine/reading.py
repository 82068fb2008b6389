"""Batched, paged reads over the store port: the engine never loads one resource per query.

Searches are by id lists (``_id=a,b,c``, ``patient=a,b,c``) in chunks, so a region of 18,000
patients costs a few hundred queries, not tens of thousands.
"""

from __future__ import annotations

from typing import Iterator, Sequence

from careflow.fhir.search_query import MAX_COUNT, parse_search
from careflow.store.port import Repository, SearchResult, Stored

ID_CHUNK = 100  # ids per search: keeps query strings and IN lists modest


def chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i:i + size])


def search_pages(
    repo: Repository, rtype: str, params: list[tuple[str, str]], *, page_size: int = 500
) -> Iterator[SearchResult]:
    """Every page of a search in ``_id`` order (stable while other rows change), each continuing
    from the last one's cursor: a deep page costs what the first does, where ``_offset`` made the
    store find and skip every earlier match again."""
    size = max(1, min(page_size, MAX_COUNT))
    cursor: str | None = None
    while True:
        extra = [("_cursor", cursor)] if cursor else []
        query = parse_search(rtype, [*params, ("_sort", "_id"), ("_count", str(size)), ("_total", "none"), *extra],
                             strict=True)
        page = repo.search(query)
        yield page
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def search_all(repo: Repository, rtype: str, params: list[tuple[str, str]], *, page_size: int = 500) -> list[Stored]:
    out: list[Stored] = []
    for page in search_pages(repo, rtype, params, page_size=page_size):
        out += page.matches
    return out


def by_ids(repo: Repository, rtype: str, ids: Sequence[str], param: str = "_id",
           extra: list[tuple[str, str]] | None = None) -> list[Stored]:
    """Resources whose ``param`` is one of ``ids`` (chunked)."""
    out: list[Stored] = []
    for chunk in chunks(sorted(set(ids)), ID_CHUNK):
        out += search_all(repo, rtype, [(param, ",".join(chunk)), *(extra or [])])
    return out


def ref_id(reference: object, rtype: str) -> str | None:
    """The id in a ``Type/id`` (or absolute ``.../Type/id``) reference of ``rtype``."""
    if not isinstance(reference, dict):
        return None
    ref = reference.get("reference")
    if not isinstance(ref, str):
        return None
    parts = ref.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == rtype:
        return parts[-1]
    return None
