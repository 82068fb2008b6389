"""The pathway viewer for programme authors: lanes per role over time, validation at the lines, versions compared.

The viewer shows programmes, never patient data, so every signed-in caller may use it (programmes
are directory data, as their PlanDefinitions are in the API). What it draws comes from the same
pure account of a pathway as ``careflow programs show`` (``careflow.programs.timeline.pathway``);
what it reports about a pasted or uploaded file is what ``careflow programs validate`` reports
(``careflow.programs.loader``), placed beside the numbered line it points at; what it compares is
``careflow.programs.compare``. This module only turns those into what the templates print, and
guards the loader against input no author would write (a file too large, not text, or a YAML
alias bomb that would make validation walk millions of nodes).
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Callable

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, Event

from careflow.errors import ProgramError
from careflow.programs.compare import Change, compare
from careflow.programs.durations import parse_duration
from careflow.programs.loader import YamlPortabilityWarning, parse_program, program_files
from careflow.programs.model import Program, Text
from careflow.programs.positioned_yaml import Problem
from careflow.programs.timeline import Pathway, pathway, rule_text

LIMIT = 256 * 1024  # bytes of YAML: the largest programme is under 40 KB
LINES = 3000  # lines of YAML: the largest programme has under 800 (the round-trip parser takes ~0.3 ms a line)
EVENTS = 12000  # parser events (keys, values, collections): the largest programme has under 3000
ALIASES = 20  # YAML aliases a pasted file may use: none of the programmes needs one, a bomb needs many
DEPTH = 40  # nesting a pasted file may use: the programmes nest 9 deep; the loader's recursion is slow far deeper
Gettext = Callable[..., str]


# ---------------------------------------------------------------- reading what was pasted or uploaded


def decode(data: bytes, filename: str) -> tuple[str | None, Problem | None]:
    """The upload as text, or the one problem that it is not a programme file at all."""
    if len(data) > LIMIT:
        return None, Problem(filename, 1, 1, "", f"the file is larger than {LIMIT // 1024} KB")
    if b"\x00" in data:
        return None, Problem(filename, 1, 1, "", "the file is not text (it holds binary data)")
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return None, Problem(filename, line, 1, "", "the file is not UTF-8 text")


def _shape_problem(text: str, filename: str) -> Problem | None:
    """Input that would keep the loader busy for seconds, refused before anything is built: too many
    lines or values, too many YAML aliases (``*name``: each makes validation walk its anchor's whole
    tree again), nesting deeper than any programme."""
    lines = text.count("\n") + 1
    if lines > LINES:
        return Problem(filename, LINES + 1, 1, "", f"more than {LINES} lines: no programme needs that many")
    aliases = depth = 0

    def at(event: Event, message: str) -> Problem:
        return Problem(filename, event.start_mark.line + 1, event.start_mark.column + 1, "", message)

    try:
        for n, event in enumerate(YAML(typ="rt").parse(text)):
            if n > EVENTS:
                return at(event, f"more than {EVENTS} keys and values: no programme needs that many")
            if isinstance(event, AliasEvent):
                aliases += 1
                if aliases > ALIASES:
                    return at(event, f"more than {ALIASES} YAML aliases: write the values out")
            elif isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > DEPTH:
                    return at(event, f"nested more than {DEPTH} levels deep: no programme needs that")
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except YAMLError:
        return None  # the loader reports the syntax error at its line
    return None


@dataclass
class SourceLine:
    number: int
    text: str
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


@dataclass
class Checked:
    """One pasted or uploaded programme: its lines, every problem and warning, the programme when valid."""

    filename: str
    text: str
    problems: list[Problem]
    warnings: list[Problem]
    program: Program | None

    @cached_property
    def lines(self) -> list[SourceLine]:
        """The numbered lines with their problems (a file refused for its length: up to the line it is refused at)."""
        rows = [SourceLine(i, line) for i, line in enumerate(self.text.splitlines()[: LINES + 1] or [""], start=1)]
        for p in self.problems:
            rows[min(max(p.line, 1), len(rows)) - 1].problems.append(p)
        for w in self.warnings:
            rows[min(max(w.line, 1), len(rows)) - 1].warnings.append(w)
        return rows

    @property
    def problem_lines(self) -> list[int]:
        return sorted({min(max(p.line, 1), len(self.lines)) for p in self.problems})


def check(text: str, filename: str) -> Checked:
    """Validate like ``careflow programs validate``: every problem at once, each at its line."""
    bomb = _shape_problem(text, filename)
    if bomb is not None:
        return Checked(filename, text, [bomb], [], None)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", YamlPortabilityWarning)
        try:
            program: Program | None = parse_program(text, filename)
            problems: list[Problem] = []
        except ProgramError as exc:
            program, problems = None, list(exc.problems)
        except RecursionError:  # nesting deeper than any programme: the parser gives up
            program, problems = None, [Problem(filename, 1, 1, "", "the YAML is nested too deeply to read")]
    found = [_warning(str(w.message), filename) for w in seen if issubclass(w.category, YamlPortabilityWarning)]
    return Checked(filename, text, problems, found, program)


def _warning(message: str, filename: str) -> Problem:
    where, _, what = message.partition(": ")
    parts = where.rsplit(":", 2)
    try:
        return Problem(filename, int(parts[1]), int(parts[2]), "", what)
    except (IndexError, ValueError):
        return Problem(filename, 1, 1, "", message)


# ---------------------------------------------------------------- the programmes in use and their files


@lru_cache(maxsize=64)
def _file_canonical(path: str, mtime_ns: int) -> tuple[str, str] | None:
    """(canonical, text) of one programme file, read once per change of the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return parse_program(text, path).canonical, text
    except (OSError, UnicodeDecodeError, ProgramError):
        return None


def source_of(program: Program, folder: str | Path) -> str | None:
    """The YAML file the programme in use was read from (matched by canonical url|version)."""
    try:
        files = program_files([folder])
    except OSError:
        return None
    for f in files:
        try:
            found = _file_canonical(str(f), f.stat().st_mtime_ns)
        except OSError:
            continue
        if found and found[0] == program.canonical:
            return found[1]
    return None


# ---------------------------------------------------------------- words, in the page's language


@dataclass(frozen=True)
class Said:
    """A text and the language it is in (French pages show a programme's English, marked as such)."""

    text: str
    lang: str


def said(text: Text, lang: str) -> Said:
    return Said(text.nl, "nl") if lang == "nl" else Said(text.en, "en")


def role_name(program: Program, role_id: str, lang: str, _: Gettext) -> Said:
    role = program.roles.get(role_id)
    if role is None:
        return Said(role_id, lang)
    if lang == "fr" and _(role_id) != role_id:  # the catalogue names the common disciplines
        return Said(_(role_id), "fr")
    return said(role.title, lang)


def span(text: str, _: Gettext) -> str:
    """'P3M' -> '3 maanden' (the terminal view's ``humanise``, in the page's language)."""
    d = parse_duration(text)
    parts = []
    for n, unit in ((d.years, "year"), (d.months, "month"), (d.days, "day")):
        if not n:
            continue
        if unit == "day" and n % 7 == 0:
            n, unit = n // 7, "week"
        parts.append(_(f"{{n}} {unit}", n=n) if n == 1 else _(f"{{n}} {unit}s", n=n))
    return " ".join(parts) or _("immediately")


# the messages span() builds, spelled out so the catalogue check finds them
_SPANS = ('_("{n} day")', '_("{n} days")', '_("{n} week")', '_("{n} weeks")', '_("{n} month")', '_("{n} months")',
          '_("{n} year")', '_("{n} years")')


@dataclass
class ActivityRow:
    id: str
    title: Said
    starts: str
    repeats: str
    due: str
    priority: str
    only_if: str  # the restriction as the terminal view says it (English)
    shared: str | None


@dataclass
class TriggerRow:
    id: str
    title: Said
    kind: str
    condition: Said
    then: list[str]
    fires: str


@dataclass
class Bar:
    x: float
    width: float
    y: float
    label: str
    css: str


@dataclass
class Flag:
    x: float
    y: float
    label: str
    count: int = 1


@dataclass
class LaneView:
    role_id: str
    name: Said
    y: float
    height: float
    rows: list[tuple[float, str]]  # (y, activity title) of each sub-row
    bars: list[Bar]
    flags: list[Flag]
    activities: list[ActivityRow]


@dataclass
class Drawing:
    """The swim lanes, laid out for the template's inline SVG (coordinates in SVG user units)."""

    width: float
    height: float
    axis_x: float
    axis_width: float
    any_x: float
    ticks: list[tuple[float, str]]
    lanes: list[LaneView]
    triggers: list[TriggerRow]
    period: str


LABEL_W, AXIS_W, ANY_W, ROW_H, TOP = 240.0, 600.0, 110.0, 18.0, 34.0


def _title(program: Program, activity_id: str, lang: str) -> str:
    try:
        return said(program.activity(activity_id).title, lang).text
    except KeyError:
        return activity_id


def _starts(mark: Any, program: Program, lang: str, _: Gettext) -> str:
    a = mark.activity
    start = parse_duration(a.timing.start).approx_days
    if a.after:
        text = _("after {activities}", activities=", ".join(_title(program, d, lang) for d in a.after))
        return text + (f" + {span(a.timing.start, _)}" if start else "")
    if a.timing.season:
        return _("in the season") if not start else _("{span} after enrolment", span=span(a.timing.start, _))
    return _("at enrolment") if not start else _("{span} after enrolment", span=span(a.timing.start, _))


def _repeats(mark: Any, _: Gettext) -> str:
    t = mark.activity.timing
    if t.season:
        text = _("every year from {opens} to {closes}", opens=t.season.opens, closes=t.season.closes)
    elif t.every:
        text = _("every {span}", span=span(t.every, _))
    else:
        return _("once")
    return text + ("; " + _("{n} times in all", n=t.times) if t.times else "")


def _condition(tm: Any, program: Program, lang: str, _: Gettext) -> Said:
    w = tm.trigger.when
    if w.overdue:
        what = _("any task") if w.overdue.activity == "any" else _title(program, w.overdue.activity, lang)
        return Said(_("{activity} overdue by {span}", activity=what, span=span(w.overdue.by, _)), lang)
    if w.completed:
        return Said(_("{activity} completed", activity=_title(program, w.completed, lang)), lang)
    if w.rejected:
        what = _("any task") if w.rejected == "any" else _title(program, w.rejected, lang)
        return Said(_("{activity} rejected", activity=what), lang)
    if w.discharged:
        return Said(_("after a hospital stay"), lang)
    from careflow.programs.timeline import only_text

    return Said(rule_text(w.observation) + only_text(tm.trigger.only_if), "en")  # measurement names are English


def _then(tm: Any, program: Program, lang: str, _: Gettext) -> list[str]:
    th = tm.trigger.then
    out = []
    if th.escalate_to:
        out.append(_("escalate to {role}", role=role_name(program, th.escalate_to, lang, _).text)
                   + (f" ({_(th.priority)})" if th.priority else ""))
    if th.start:
        out.append(_("start {activities}", activities=", ".join(_title(program, s, lang) for s in th.start)))
    if th.reassign_to:
        out.append(_("reassign to {role}", role=role_name(program, th.reassign_to, lang, _).text))
    if th.create_task:
        ct = th.create_task
        out.append(_("new task for {role}: {title}", role=role_name(program, ct.role, lang, _).text,
                     title=said(ct.title, lang).text) + f" ({_(ct.priority)})")
    if th.flag_plan:
        out.append(_("flag the plan for attention"))
    return out


KINDS = {"overdue": 'Overdue', "completed": 'Completed', "rejected": 'Rejected', "observation": 'Measurement',
         "discharged": 'Hospital discharge'}
_KIND_MESSAGES = ('_("Overdue")', '_("Completed")', '_("Rejected")', '_("Measurement")', '_("Hospital discharge")')


def drawing(program: Program, lang: str, _: Gettext) -> Drawing:
    """Lanes, bars and trigger flags of ``program`` over its plan's period, with the rows of the text alternative."""
    pw: Pathway = pathway(program)
    axis_end = max([pw.period_days, *(m.opens for lane in pw.lanes for m in lane.marks if not m.activity.timing.season)])
    scale = AXIS_W / axis_end
    axis_x, any_x = LABEL_W, LABEL_W + AXIS_W + 10

    def x(day: float) -> float:
        return round(axis_x + min(day, axis_end) * scale, 1)

    months = round(axis_end / 30.44)
    step = 1 if months <= 15 else 3 if months <= 48 else 12
    ticks = [(x(m * 30.44), str(m)) for m in range(0, months + 1, step)]
    lanes: list[LaneView] = []
    y = TOP
    triggers = []
    for tm in pw.triggers:
        fires = (_("from day {day}", day=int(tm.at)) if tm.at is not None else _("at any time"))
        triggers.append(TriggerRow(tm.trigger.id, said(tm.trigger.title, lang) if tm.trigger.title else Said(tm.trigger.id, lang),
                                   _(KINDS[tm.kind]), _condition(tm, program, lang, _), _then(tm, program, lang, _), fires))
    for lane in pw.lanes:
        acting = [(i, tm) for i, tm in enumerate(pw.triggers) if lane.role_id in tm.acts_on]
        if not lane.marks and not acting:
            continue
        name = role_name(program, lane.role_id, lang, _)
        view = LaneView(lane.role_id, name, y, ROW_H * (1 + len(lane.marks)) + 6, [], [], [], [])
        for n, mark in enumerate(lane.marks, start=1):
            a = mark.activity
            row_y = y + n * ROW_H
            title = said(a.title, lang).text
            view.rows.append((row_y, title if len(title) <= 34 else title[:33] + "…"))
            row = ActivityRow(a.id, said(a.title, lang), _starts(mark, program, lang, _), _repeats(mark, _),
                              span(a.timing.due_within, _), _(a.priority) if a.priority != "routine" else "",
                              _only_text(a), a.shared)
            view.activities.append(row)
            css = "bar " + ("after " if a.after else "") + (a.priority if a.priority != "routine" else "")
            label = f"{title}: {row.starts}; {row.repeats}; " + _("due within {span}", span=row.due)
            if a.timing.season:
                view.bars.append(Bar(axis_x, AXIS_W, row_y + 5, label, "season"))
                continue
            width = max(round(mark.due_days * scale, 1), 2.0)
            for day in mark.occurrences:
                view.bars.append(Bar(x(day), min(width, axis_x + AXIS_W - x(day)) or 2.0, row_y + 3, label, css.strip()))
        untimed = [triggers[i] for i, tm in acting if tm.at is None]
        for i, tm in acting:
            if tm.at is not None:
                view.flags.append(Flag(x(tm.at), y + ROW_H / 2 + 2, f"{triggers[i].title.text}: {triggers[i].condition.text}"))
        if untimed:
            view.flags.append(Flag(any_x + 14, y + ROW_H / 2 + 2, "; ".join(t.title.text for t in untimed), len(untimed)))
        lanes.append(view)
        y += view.height
    return Drawing(any_x + ANY_W, y + 6, axis_x, AXIS_W, any_x, ticks, lanes, triggers, span(program.plan_period, _))


def _only_text(a: Any) -> str:
    from careflow.programs.timeline import only_text

    return only_text(a.only_if).strip().removeprefix("(").removesuffix(")")


# ---------------------------------------------------------------- two versions side by side


@dataclass
class DiffRow:
    tag: str  # equal, replace, delete, insert
    old_no: int | None
    old: str
    new_no: int | None
    new: str


def side_by_side(old: str, new: str, context: int = 2) -> list[DiffRow | None]:
    """The two sources line against line, only the changed stretches with ``context`` lines around
    them (None marks lines left out)."""
    a, b = old.splitlines(), new.splitlines()
    out: list[DiffRow | None] = []
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(context):
        if out:
            out.append(None)
        for tag, i1, i2, j1, j2 in group:
            for k in range(max(i2 - i1, j2 - j1)):
                i, j = i1 + k, j1 + k
                old_line = a[i] if i < i2 else None
                new_line = b[j] if j < j2 else None
                kind = tag if tag == "equal" else ("replace" if old_line is not None and new_line is not None
                                                   else "delete" if old_line is not None else "insert")
                out.append(DiffRow(kind, i + 1 if old_line is not None else None, old_line or "",
                                   j + 1 if new_line is not None else None, new_line or ""))
    return out


@dataclass
class Comparison:
    old: Checked
    new: Checked
    changes: list[Change]
    rows: list[DiffRow | None]

    @property
    def by_kind(self) -> dict[str, list[Change]]:
        out: dict[str, list[Change]] = {"added": [], "removed": [], "changed": []}
        for c in self.changes:
            out[c.kind].append(c)
        return out


def comparison(old: Checked, new: Checked) -> Comparison | None:
    """Both versions valid: what the second adds, removes and changes; else None (the page shows the errors)."""
    if old.program is None or new.program is None:
        return None
    return Comparison(old, new, compare(old.program, new.program), side_by_side(old.text, new.text))
