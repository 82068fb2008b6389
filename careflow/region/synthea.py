"""Read Synthea FHIR R4 transaction Bundles as plain resource dicts ready to store.

Synthea writes transaction Bundles whose entries reference each other by ``urn:uuid:<id>`` (the
entry's fullUrl), and newer versions reference practitioners and organisations conditionally
(``Practitioner?identifier=<system>|<value>``). A store keeps ``Type/id`` references, so the reader
rewrites both kinds. Practitioners and organisations live in a separate bundle
(``practitionerInformation*.json``, ``hospitalInformation*.json``) and reappear inside patient
bundles; a directory is therefore read practitioner bundles first and every resource is yielded once.

Only the resource types careflow serves are kept (``SERVED_TYPES``; pass ``types=`` to widen it).
Claims, ExplanationOfBenefits and other types are skipped and counted, never a crash. A reference to
a skipped or unknown resource cannot be stored as a link, so it is reduced to its display text, or
removed when it has none; ``ImportStats`` counts every such change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson

from careflow.errors import CareflowError

# What careflow's FHIR API serves today (care plans and the clinical facts programmes read).
SERVED_TYPES: frozenset[str] = frozenset(
    {
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Location",
        "Condition",
        "Observation",
        "CarePlan",
        "Goal",
        "CareTeam",
    }
)
# Shared, non-patient bundles Synthea writes next to the patient bundles.
_SHARED_BUNDLE_PREFIXES = ("practitionerInformation", "hospitalInformation")
_MAX_NOTES = 50


class BundleImportError(CareflowError):
    """A file cannot be imported as a Synthea Bundle (missing, not JSON, not a Bundle, malformed entry)."""

    def __init__(self, path: Path, problem: str, *, whole_path: bool = False) -> None:
        """A file inside the import is named by its name; the path the user gave (``whole_path``) as given."""
        self.path = path
        self.problem = problem
        super().__init__(f"{path if whole_path else path.name}: {problem}")


@dataclass
class ImportStats:
    """What a read did: counts per resource type and every reference it had to change."""

    files: int = 0
    kept: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  # resource types careflow does not serve
    duplicates: int = 0  # resources already yielded from an earlier bundle
    rewritten_references: int = 0
    dropped_references: int = 0  # pointed at a skipped type: reduced to display text or removed
    unresolved_references: int = 0  # pointed at nothing read: reduced to display text or removed
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.notes) < _MAX_NOTES:
            self.notes.append(text)


def synthea_files(path: Path) -> list[Path]:
    """The bundles under ``path`` in import order: shared practitioner/hospital bundles first."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise BundleImportError(path, "no such file or directory", whole_path=True)
    files = sorted(p for p in path.glob("*.json") if p.is_file())
    if not files:
        raise BundleImportError(path, "the directory holds no Synthea bundles (*.json)", whole_path=True)
    shared = [p for p in files if p.name.startswith(_SHARED_BUNDLE_PREFIXES)]
    return shared + [p for p in files if p not in shared]


def read_synthea(
    path: Path | str,
    *,
    types: Iterable[str] = SERVED_TYPES,
    stats: ImportStats | None = None,
) -> Iterator[dict[str, Any]]:
    """Every kept resource of the Synthea bundle(s) at ``path`` (a file or a directory), references
    rewritten to ``Type/id``. Raises ``BundleImportError`` naming the file for unreadable input."""
    reader = _Reader(frozenset(types), stats if stats is not None else ImportStats())
    for file in synthea_files(Path(path)):
        yield from reader.read_file(file)


class _Reader:
    """State shared across the files of one read: where every fullUrl and identifier points."""

    def __init__(self, types: frozenset[str], stats: ImportStats) -> None:
        self.types = types
        self.stats = stats
        self.by_full_url: dict[str, tuple[str, str]] = {}  # fullUrl -> (type, id)
        self.by_identifier: dict[tuple[str, str, str], str] = {}  # (type, system, value) -> id
        self.yielded: set[tuple[str, str]] = set()

    def read_file(self, file: Path) -> Iterator[dict[str, Any]]:
        entries = _load_entries(file)
        self.stats.files += 1
        resources: list[dict[str, Any]] = []
        for index, entry in enumerate(entries):
            resource = _entry_resource(file, index, entry)
            rtype = resource["resourceType"]
            rid = resource.get("id")
            full_url = entry.get("fullUrl")
            if not isinstance(rid, str) or not rid:
                if isinstance(full_url, str) and full_url.startswith("urn:uuid:"):
                    rid = resource["id"] = full_url.removeprefix("urn:uuid:")
                else:
                    raise BundleImportError(file, f"entry {index} ({rtype}) has neither an id nor a urn:uuid fullUrl")
            if isinstance(full_url, str):
                self.by_full_url[full_url] = (rtype, rid)
            for identifier in resource.get("identifier") or ():
                if isinstance(identifier, dict) and "system" in identifier and "value" in identifier:
                    self.by_identifier.setdefault((rtype, identifier["system"], identifier["value"]), rid)
            resources.append(resource)
        for resource in resources:
            rtype, rid = resource["resourceType"], resource["id"]
            if rtype not in self.types:
                self.stats.skipped[rtype] += 1
                continue
            if (rtype, rid) in self.yielded:
                self.stats.duplicates += 1
                continue
            self.yielded.add((rtype, rid))
            self._rewrite(resource, f"{rtype}/{rid}")
            self.stats.kept[rtype] += 1
            yield resource

    # --- references ---

    def _target(self, reference: str) -> tuple[str, str] | None:
        """(type, id) a Synthea reference points at, when it can be known."""
        if reference.startswith("urn:uuid:"):
            return self.by_full_url.get(reference)
        if "?" in reference:
            rtype, _, query = reference.partition("?")
            for name, value in parse_qsl(query):
                if name == "identifier" and "|" in value:
                    system, _, code = value.partition("|")
                    rid = self.by_identifier.get((rtype, system, code))
                    if rid is not None:
                        return rtype, rid
            return None
        return None

    def _rewrite(self, node: Any, where: str) -> None:
        """Rewrite every reference inside ``node`` in place (dicts and lists, any depth)."""
        if isinstance(node, dict):
            for key in list(node):
                value = node[key]
                if isinstance(value, dict) and isinstance(value.get("reference"), str):
                    fixed = self._fixed_reference(value, where)
                    if fixed is None:
                        del node[key]
                    else:
                        node[key] = fixed
                elif isinstance(value, list):
                    kept = []
                    for item in value:
                        if isinstance(item, dict) and isinstance(item.get("reference"), str):
                            item = self._fixed_reference(item, where)
                            if item is None:
                                continue
                        else:
                            self._rewrite(item, where)
                        kept.append(item)
                    if kept:
                        node[key] = kept
                    else:
                        del node[key]
                else:
                    self._rewrite(value, where)
        elif isinstance(node, list):
            for item in node:
                self._rewrite(item, where)

    def _fixed_reference(self, ref: dict[str, Any], where: str) -> dict[str, Any] | None:
        """The reference rewritten to Type/id; reduced to its display, or None when it must go."""
        reference = ref["reference"]
        if not (reference.startswith("urn:uuid:") or "?" in reference):
            self._rewrite(ref, where)  # a local "#contained" or already Type/id reference
            return ref
        target = self._target(reference)
        if target is not None and target[0] in self.types:
            ref["reference"] = f"{target[0]}/{target[1]}"
            self.stats.rewritten_references += 1
            return ref
        if target is None:
            self.stats.unresolved_references += 1
            self.stats.note(f"{where}: {reference} points at nothing read; reference removed")
        else:
            self.stats.dropped_references += 1
        del ref["reference"]
        return ref if ref.get("display") else None


def _load_entries(file: Path) -> list[Any]:
    try:
        data = orjson.loads(file.read_bytes())
    except FileNotFoundError:
        raise BundleImportError(file, "no such file") from None
    except OSError as exc:
        raise BundleImportError(file, f"cannot be read ({exc.strerror or exc})") from None
    except orjson.JSONDecodeError as exc:
        raise BundleImportError(file, f"not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        found = data.get("resourceType") if isinstance(data, dict) else type(data).__name__
        raise BundleImportError(file, f"not a FHIR Bundle (found {found!r})")
    entries = data.get("entry", [])
    if not isinstance(entries, list):
        raise BundleImportError(file, "Bundle.entry is not a list")
    return entries


def _entry_resource(file: Path, index: int, entry: Any) -> dict[str, Any]:
    resource = entry.get("resource") if isinstance(entry, dict) else None
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise BundleImportError(file, f"entry {index} has no resource with a resourceType")
    return resource
