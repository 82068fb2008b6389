"""Check a resource against careflow's own StructureDefinitions in ``fhir_profiles/``.

Why a small checker of our own: the HL7 validator is a Java program we cannot ship, and the rules
careflow promises (identifier systems, fixed intents, a SNOMED CT discipline on every Task, ...)
must be written once, in the profiles, and enforced from there. So this module reads each profile's
differential and walks the resource along it. It understands the subset of StructureDefinition our
profiles use and refuses to load a profile that uses anything more (better an error than a rule
silently not enforced):

* cardinality (``min`` / ``max``) per parent instance, on plain paths, choice ``[x]`` elements and slices;
* ``fixed[x]`` (exact) and ``pattern[x]`` (the instance contains the pattern) values;
* choice types allowed for ``[x]`` elements, and target types of ``Reference`` elements (``targetProfile``);
* slicing by ``value`` / ``pattern`` discriminators (``$this``, a child path, or ``url`` for extensions);
* extensions: any extension in careflow's namespace, anywhere in the resource, is checked against
  its StructureDefinition (shape and context); extension slices count and bound them.

Inherited constraints of the base profiles (HL7 Belgium, core R4) and invariants are not re-checked:
the R4 JSON Schema (``careflow.fhir.r4_schema``) and ``fhir.resources`` cover the core structure.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Iterator

from careflow import naming
from careflow.bundled import folder
from careflow.errors import ProfileDefinitionError
from careflow.fhir.r4_schema import definitions, resource_types

PROFILES_ENV = "CAREFLOW_PROFILES_DIR"
DEFAULT_DIR = folder("fhir_profiles")  # the checkout's fhir_profiles/, or its copy in an installed wheel
CORE_SD = "http://hl7.org/fhir/StructureDefinition/"

# External profiles our references may target, and the resource type each constrains.
EXTERNAL_PROFILE_TYPES: dict[str, str] = {
    naming.BE_PROFILE_PATIENT: "Patient",
    naming.BE_PROFILE_PRACTITIONER: "Practitioner",
    naming.BE_PROFILE_PRACTITIONERROLE: "PractitionerRole",
    naming.BE_PROFILE_ORGANIZATION: "Organization",
    naming.BE_PROFILE_CAREPLAN: "CarePlan",
    naming.BE_PROFILE_CARETEAM: "CareTeam",
    naming.BE_PROFILE_GOAL: "Goal",
    naming.BE_PROFILE_TASK: "Task",
}

# Element keys that only document; everything else must be enforced below or the profile is refused.
_DOC_KEYS = {"id", "path", "sliceName", "short", "definition", "comment", "requirements", "mustSupport", "alias", "label"}
_RULE_KEYS = {"min", "max", "type", "slicing"}
_DISCRIMINATORS = {"value", "pattern"}
_SLICE_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")
_REFERENCE_TYPE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?$")


@dataclass(frozen=True)
class Rule:
    """One differential element, parsed."""

    id: str
    steps: tuple[tuple[str, str | None], ...]  # (element name, slice name) from the root's child on
    min: int | None
    max: int | None  # None: unbounded or not constrained
    fixed: tuple[str, Any] | None  # (suffix, value), e.g. ("Uri", "https://...")
    pattern: tuple[str, Any] | None
    types: tuple[str, ...]  # allowed type codes for a choice element
    target_types: frozenset[str]  # resource types a Reference may point at
    ext_profiles: tuple[str, ...]  # extension profiles (on extension slices)
    slicing: dict[str, Any] | None

    @property
    def parent_steps(self) -> tuple[tuple[str, str | None], ...]:
        return self.steps[:-1]


@dataclass(frozen=True)
class Profile:
    """One StructureDefinition of ours, ready to check instances."""

    url: str
    name: str
    type: str
    kind: str
    contexts: tuple[str, ...]
    rules: dict[str, Rule] = field(default_factory=dict)

    def rule(self, element_id: str) -> Rule | None:
        return self.rules.get(element_id)


# ------------------------------------------------------------------------------------------ loading


def profiles_dir() -> Path:
    """Where the profiles are read from: ``$CAREFLOW_PROFILES_DIR`` if set, else the ``fhir_profiles/`` careflow ships."""
    configured = os.environ.get(PROFILES_ENV)
    return Path(configured) if configured else DEFAULT_DIR


def _bad(source: str, what: str) -> ProfileDefinitionError:
    return ProfileDefinitionError(f"{source}: {what}")


def _choice_value(element: dict[str, Any], prefix: str) -> tuple[str, Any] | None:
    found = [(k[len(prefix):], v) for k, v in element.items() if k.startswith(prefix) and k[len(prefix):][:1].isupper()]
    if len(found) > 1:
        raise ValueError(f"more than one {prefix}[x]")
    return found[0] if found else None


def _parse_steps(element_id: str, root: str) -> tuple[tuple[str, str | None], ...]:
    parts = element_id.split(".")
    if parts[0] != root:
        raise ValueError(f"does not start with {root}")
    steps = []
    for part in parts[1:]:
        name, _, slice_name = part.partition(":")
        if not name or (slice_name and not _SLICE_NAME.match(slice_name)):
            raise ValueError(f"cannot read step {part!r}")
        steps.append((name, slice_name or None))
    return tuple(steps)


def _profile_type(url: str, own: dict[str, str]) -> str | None:
    if url in own:
        return own[url]
    if url in EXTERNAL_PROFILE_TYPES:
        return EXTERNAL_PROFILE_TYPES[url]
    if url.startswith(CORE_SD) and url[len(CORE_SD):].isalpha():
        return url[len(CORE_SD):]
    return None


def _parse_rule(element: dict[str, Any], root: str, own_types: dict[str, str], source: str) -> Rule:
    element_id = element.get("id")
    if not isinstance(element_id, str):
        raise _bad(source, f"an element has no id: {element}")
    where = f"{source} {element_id}"
    unknown = {
        k for k in element if k not in _DOC_KEYS | _RULE_KEYS and not k.startswith(("fixed", "pattern"))
    }
    if unknown:
        raise _bad(where, f"uses {', '.join(sorted(unknown))}, which the careflow checker cannot enforce")
    try:
        steps = _parse_steps(element_id, root)
        fixed = _choice_value(element, "fixed")
        pattern = _choice_value(element, "pattern")
    except ValueError as exc:
        raise _bad(where, str(exc)) from exc
    if fixed and pattern:
        raise _bad(where, "has both fixed[x] and pattern[x]")
    expected_path = ".".join([root, *(name for name, _ in steps)])
    if element.get("path") != expected_path:
        raise _bad(where, f"path should be {expected_path!r}")
    max_raw = element.get("max")
    if max_raw not in (None, "*") and not (isinstance(max_raw, str) and max_raw.isdigit()):
        raise _bad(where, f"max {max_raw!r} is neither a number nor '*'")
    max_value = None if max_raw in (None, "*") else int(max_raw)
    min_value = element.get("min")
    if min_value is not None and (not isinstance(min_value, int) or min_value < 0):
        raise _bad(where, f"min {min_value!r} is not a whole number")
    types: list[str] = []
    targets: set[str] = set()
    ext_profiles: list[str] = []
    for t in element.get("type", []):
        if set(t) - {"code", "targetProfile", "profile"}:
            raise _bad(where, f"type uses {', '.join(sorted(set(t) - {'code', 'targetProfile', 'profile'}))}, which the checker cannot enforce")
        if t.get("profile") and t.get("code") != "Extension":
            raise _bad(where, f"type {t.get('code')} names a profile; the checker only follows extension profiles")
        types.append(t["code"])
        for target in t.get("targetProfile", []):
            target_type = _profile_type(target, own_types)
            if target_type is None:
                raise _bad(where, f"targets {target}, a profile whose resource type the checker does not know")
            targets.add(target_type)
        if t["code"] == "Extension":
            ext_profiles.extend(t.get("profile", []))
    slicing = element.get("slicing")
    if slicing is not None:
        for d in slicing.get("discriminator", []):
            if d.get("type") not in _DISCRIMINATORS:
                raise _bad(where, f"slices by {d.get('type')!r}; only value and pattern are supported")
        if not slicing.get("discriminator"):
            raise _bad(where, "slicing without a discriminator")
        if slicing.get("ordered"):
            raise _bad(where, "ordered slicing cannot be enforced by the checker")
    return Rule(
        id=element_id,
        steps=steps,
        min=min_value,
        max=max_value,
        fixed=fixed,
        pattern=pattern,
        types=tuple(types) if element_id.endswith("[x]") else (),
        target_types=frozenset(targets),
        ext_profiles=tuple(ext_profiles),
        slicing=slicing,
    )


def _load_one(path: Path, own_types: dict[str, str]) -> Profile:
    source = path.name
    try:
        sd = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _bad(source, f"cannot be read as JSON: {exc}") from exc
    if sd.get("resourceType") != "StructureDefinition" or sd.get("derivation") != "constraint":
        raise _bad(source, "is not a constraining StructureDefinition")
    root = sd["type"]
    rules: dict[str, Rule] = {}
    for element in sd.get("differential", {}).get("element", []):
        rule = _parse_rule(element, root, own_types, source)
        if rule.id in rules:
            raise _bad(source, f"declares {rule.id} twice")
        rules[rule.id] = rule
    contexts = tuple(c["expression"] for c in sd.get("context", []))
    profile = Profile(url=sd["url"], name=sd.get("name", sd["id"]), type=root, kind=sd["kind"], contexts=contexts, rules=rules)
    for rule in rules.values():  # every slice must be decidable: its sliced element and discriminator values
        if rule.steps and rule.steps[-1][1] is not None:
            _slice_expectations(profile, rule)
    return profile


@cache
def _profiles() -> dict[str, Profile]:
    folder = profiles_dir()
    files = sorted(folder.glob("*.json"))
    if not files:
        raise ProfileDefinitionError(f"no StructureDefinitions in {folder}; set {PROFILES_ENV} to the fhir_profiles folder")
    own_types: dict[str, str] = {}
    for path in files:
        try:
            sd = json.loads(path.read_text(encoding="utf-8"))
            own_types[sd["url"]] = sd["type"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise _bad(path.name, f"cannot be read as a StructureDefinition: {exc}") from exc
    loaded = {p.url: p for p in (_load_one(path, own_types) for path in files)}
    for profile in loaded.values():  # extension slices are checked by extension_errors, so their profile must exist
        for rule in profile.rules.values():
            for url in rule.ext_profiles:
                if url not in loaded or loaded[url].type != "Extension":
                    raise _bad(profile.name, f"{rule.id} uses extension {url}, which fhir_profiles/ does not define")
    return loaded


def load_profiles() -> dict[str, Profile]:
    """All of careflow's profiles and extensions by canonical URL (read once, then cached)."""
    return dict(_profiles())


def profile_for(resource_type: str) -> Profile | None:
    """careflow's resource profile for a resource type, if it has one."""
    for p in _profiles().values():
        if p.kind == "resource" and p.type == resource_type:
            return p
    return None


# ------------------------------------------------------------------------------------------ walking


def _element_children(value: dict[str, Any], name: str) -> Iterator[tuple[str, Any]]:
    """(json key, value) pairs for element ``name`` of ``value``; ``x[x]`` matches every ``xType`` key."""
    if name.endswith("[x]"):
        prefix = name[:-3]
        for key, child in value.items():
            if key.startswith(prefix) and key[len(prefix):][:1].isupper():
                yield key, child
    elif name in value:
        yield name, value[name]


def _items(value: dict[str, Any], name: str, loc: str) -> Iterator[tuple[str, str, Any]]:
    """(location, json key, item) for every repetition of element ``name`` in ``value``."""
    for key, child in _element_children(value, name):
        if isinstance(child, list):
            for i, item in enumerate(child):
                yield f"{loc}.{key}[{i}]", key, item
        elif child is not None:
            yield f"{loc}.{key}", key, child


def _matches(actual: Any, pattern: Any) -> bool:
    """FHIR pattern semantics: every element of the pattern is in the instance; repeats match any item."""
    if isinstance(pattern, dict):
        return isinstance(actual, dict) and all(k in actual and _matches(actual[k], v) for k, v in pattern.items())
    if isinstance(pattern, list):
        items = actual if isinstance(actual, list) else [actual]
        return all(any(_matches(a, p) for a in items) for p in pattern)
    return bool(actual == pattern)


def _path_values(value: Any, path: str) -> list[Any]:
    if path == "$this":
        return [value]
    current = [value]
    for step in path.split("."):
        nxt: list[Any] = []
        for v in current:
            if isinstance(v, dict) and step in v:
                child = v[step]
                nxt.extend(child if isinstance(child, list) else [child])
        current = nxt
    return current


def _id_of(steps: tuple[tuple[str, str | None], ...], root: str) -> str:
    return ".".join([root, *(f"{n}:{s}" if s else n for n, s in steps)])


def _slice_expectations(profile: Profile, slice_rule: Rule) -> list[tuple[str, str, Any]]:
    """(discriminator type, path, expected value) for one slice, from its own definition."""
    name, slice_name = slice_rule.steps[-1]
    sliced_id = _id_of((*slice_rule.parent_steps, (name, None)), profile.type)
    sliced = profile.rule(sliced_id)
    if sliced is None or sliced.slicing is None:
        raise _bad(profile.name, f"slice {slice_rule.id} has no slicing on {sliced_id}")
    out = []
    for d in sliced.slicing["discriminator"]:
        path = d["path"]
        if path == "$this":
            source = slice_rule
        elif path == "url" and slice_rule.ext_profiles:
            out.append((d["type"], path, slice_rule.ext_profiles[0]))
            continue
        else:
            source = profile.rule(f"{slice_rule.id}.{path}")  # type: ignore[assignment]
        given = source.fixed or source.pattern if source else None
        if given is None:
            raise _bad(profile.name, f"slice {slice_rule.id} gives no fixed or pattern value for discriminator {path!r}")
        out.append((d["type"], path, given[1]))
    return out


def _in_slice(profile: Profile, slice_rule: Rule, item: Any) -> bool:
    for kind, path, expected in _slice_expectations(profile, slice_rule):
        values = _path_values(item, path)
        if kind == "value" and expected not in values:
            return False
        if kind == "pattern" and not any(_matches(v, expected) for v in values):
            return False
    return True


def _select(profile: Profile, root: dict[str, Any], steps: tuple[tuple[str, str | None], ...], loc: str) -> list[tuple[str, Any]]:
    """Every instance of the element at ``steps`` (slices filtered), with its location."""
    current: list[tuple[str, Any]] = [(loc, root)]
    for depth, (name, slice_name) in enumerate(steps):
        slice_rule = profile.rule(_id_of(steps[: depth + 1], profile.type)) if slice_name else None
        nxt = []
        for here, value in current:
            if not isinstance(value, dict):
                continue
            for item_loc, _key, item in _items(value, name, here):
                if slice_rule is None or _in_slice(profile, slice_rule, item):
                    nxt.append((item_loc, item))
        current = nxt
    return current


def _reference_type(reference: str) -> str | None:
    match = _REFERENCE_TYPE.search(reference)
    return match.group(1) if match else None


def _allowed_type(suffix: str, types: tuple[str, ...]) -> bool:
    """``valuePositiveInt`` carries type ``positiveInt``, ``valueQuantity`` type ``Quantity``."""
    return any(suffix == t[:1].upper() + t[1:] for t in types)


def _check_rule(profile: Profile, rule: Rule, resource: dict[str, Any], loc: str) -> list[str]:
    problems: list[str] = []
    tag = f"[{profile.name} {rule.id}]"
    if not rule.steps:  # the root element documents the profile (extension root: cardinality is the slice's business)
        return problems
    name, _slice = rule.steps[-1]
    if rule.min is not None or rule.max is not None or rule.types:
        for parent_loc, parent in _select(profile, resource, rule.parent_steps, loc):
            if not isinstance(parent, dict):
                continue
            found = [
                (item_loc, item)
                for item_loc, _k, item in _items(parent, name, parent_loc)
                if _slice is None or _in_slice(profile, rule, item)
            ]
            label = f"{name}:{_slice}" if _slice else name
            if rule.min is not None and len(found) < rule.min:
                problems.append(f"{parent_loc}: {label} is required (at least {rule.min}, found {len(found)}) {tag}")
            if rule.max is not None and len(found) > rule.max:
                what = "not allowed" if rule.max == 0 else f"allowed at most {rule.max} time(s), found {len(found)}"
                problems.append(f"{parent_loc}: {label} is {what} {tag}")
            if rule.types:
                for key, _child in _element_children(parent, name):
                    suffix = key[len(name) - 3:]
                    if not _allowed_type(suffix, rule.types):
                        problems.append(f"{parent_loc}.{key}: {name} may only be {' | '.join(rule.types)} {tag}")
    if rule.fixed or rule.pattern or rule.target_types:
        for item_loc, item in _select(profile, resource, rule.steps, loc):
            if rule.fixed and item != rule.fixed[1]:
                problems.append(f"{item_loc}: must be exactly {json.dumps(rule.fixed[1])}, found {json.dumps(item)} {tag}")
            if rule.pattern and not _matches(item, rule.pattern[1]):
                problems.append(f"{item_loc}: must match {json.dumps(rule.pattern[1])}, found {json.dumps(item)} {tag}")
            if rule.target_types and isinstance(item, dict) and isinstance(item.get("reference"), str):
                ref = item["reference"]
                if not ref.startswith(("#", "urn:")):
                    target = _reference_type(ref)
                    if target not in rule.target_types:
                        allowed = " or ".join(sorted(rule.target_types))
                        problems.append(f"{item_loc}.reference: {ref!r} should point at a {allowed} {tag}")
    return problems


def _check_profile(profile: Profile, instance: dict[str, Any], loc: str) -> list[str]:
    problems: list[str] = []
    for rule in profile.rules.values():
        problems.extend(_check_rule(profile, rule, instance, loc))
    # closed slicing: every item must fall in one of the slices
    for rule in profile.rules.values():
        if rule.slicing and rule.slicing.get("rules") == "closed":
            name = rule.steps[-1][0]
            slices = [
                r for r in profile.rules.values()
                if r.steps and r.parent_steps == rule.parent_steps and r.steps[-1][0] == name and r.steps[-1][1]
            ]
            for item_loc, item in _select(profile, instance, rule.steps, loc):
                if not any(_in_slice(profile, s, item) for s in slices):
                    problems.append(f"{item_loc}: matches none of the slices of closed {rule.id} [{profile.name}]")
    return problems


Anchor = tuple[str, str]  # (resource or datatype name, path below it), e.g. ("Timing", ".repeat.period")


def _child_type(type_name: str | None, key: str) -> str | None:
    """The R4 type of element ``key`` in type ``type_name`` (from the R4 JSON Schema), if known."""
    if type_name is None or key.startswith("_"):
        return None
    prop = definitions().get(type_name, {}).get("properties", {}).get(key)
    if not isinstance(prop, dict):
        return None
    ref = prop.get("$ref") or prop.get("items", {}).get("$ref")
    return ref.rsplit("/", 1)[1] if isinstance(ref, str) else None


def _is_datatype(type_name: str | None) -> bool:
    return bool(type_name) and type_name is not None and "_" not in type_name and type_name[:1].isupper() and type_name not in resource_types()


def _walk_extensions(
    value: Any, anchors: tuple[Anchor, ...], type_name: str | None, loc: str
) -> Iterator[tuple[tuple[str, ...], str, dict[str, Any]]]:
    """(context names, location, extension) for every extension anywhere in ``value``.

    The context names of the element holding an extension are its path from the resource
    (``PlanDefinition.action.trigger``) and from every datatype it sits in (``TriggerDefinition``,
    ``Timing.repeat.period``), which is how StructureDefinition.context names places.
    """
    if not isinstance(value, dict):
        return
    names = tuple(a + rel for a, rel in anchors)
    for key, child in value.items():
        name = key[1:] if key.startswith("_") else key
        child_type = _child_type(type_name, key)
        child_anchors = tuple((a, f"{rel}.{name}") for a, rel in anchors)
        if key not in ("extension", "modifierExtension") and _is_datatype(child_type):
            child_anchors += ((str(child_type), ""),)
        items = child if isinstance(child, list) else [child]
        for i, item in enumerate(items):
            item_loc = f"{loc}.{key}[{i}]" if isinstance(child, list) else f"{loc}.{key}"
            if key in ("extension", "modifierExtension") and isinstance(item, dict):
                yield names, item_loc, item
            if isinstance(item, dict) and isinstance(item.get("resourceType"), str):  # contained, Bundle entry
                nested = item["resourceType"]
                yield from _walk_extensions(item, ((nested, ""),), nested, item_loc)
            else:
                yield from _walk_extensions(item, child_anchors, child_type, item_loc)


def extension_errors(resource: dict[str, Any]) -> list[str]:
    """Problems with careflow's own extensions anywhere in ``resource``, whatever its profile.

    An extension URL in careflow's namespace must be one we define, used where its context allows,
    and shaped as its StructureDefinition says. Works on any resource (Patient, PractitionerRole ...).
    """
    resource_type = str(resource.get("resourceType", "Resource"))
    problems: list[str] = []
    profiles = _profiles()
    for places, loc, ext in _walk_extensions(resource, ((resource_type, ""),), resource_type, resource_type):
        url = ext.get("url")
        if not isinstance(url, str) or not url.startswith(naming.BASE):
            continue
        definition = profiles.get(url)
        if definition is None or definition.type != "Extension":
            problems.append(f"{loc}: {url} is in careflow's namespace but careflow defines no such extension")
            continue
        if definition.contexts and not set(places) & set(definition.contexts):
            problems.append(f"{loc}: {definition.name} may only be used on {', '.join(definition.contexts)}, not on {places[0]}")
        problems.extend(_check_profile(definition, ext, loc))
    return problems


def conformance_errors(resource: dict[str, Any], profile_url: str | None = None) -> list[str]:
    """Everything in ``resource`` that breaks its careflow profile, one sentence each; [] when it conforms.

    The profile is ``profile_url`` or else the careflow profile the resource names in ``meta.profile``;
    a resource that names none is reported, since careflow marks everything it emits.
    """
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return ["not a FHIR resource: resourceType is missing"]
    resource_type = resource["resourceType"]
    profiles = _profiles()
    if profile_url is None:
        claimed = resource.get("meta", {}).get("profile", []) if isinstance(resource.get("meta"), dict) else []
        ours = [u for u in claimed if u in profiles and profiles[u].kind == "resource"]
        if not ours:
            expected = profile_for(resource_type)
            hint = f" (expected {expected.url})" if expected else ""
            return [f"{resource_type}.meta.profile: names no careflow profile{hint}"]
        profile_url = ours[0]
    profile = profiles.get(profile_url)
    if profile is None:
        raise ProfileDefinitionError(f"{profile_url} is not one of careflow's profiles")
    if profile.type != resource_type:
        return [f"{resource_type}: profile {profile.name} is for {profile.type}, not {resource_type}"]
    return _check_profile(profile, resource, resource_type) + extension_errors(resource)
