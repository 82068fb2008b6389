"""The take-home care plan (*zorgplan meegeven*): the shared plan in plain words for the patient.

Read through the repository port as the signed-in person: the patient themself, or a member of the
team printing it for them. It says what I want to reach (my goals, my own first), what I do myself
(the programmes' patient instructions), who helps me and when (the team with phone numbers and the
next appointments), the alarm signs and whom to call. No internal ids; the national number is masked;
terms such as HbA1c are explained in a short glossary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Mapping

from careflow.access.principal import Principal
from careflow.naming import SSIN
from careflow.programs.model import Program
from careflow.web.patient import patient_page

# plain-language explanations of the terms the programmes' goals and instructions use
GLOSSARY: dict[str, dict[str, str]] = {
    "HbA1c": {"nl": "HbA1c: een bloedwaarde die toont hoe hoog je suiker de laatste drie maanden gemiddeld was.",
              "en": "HbA1c: a blood value showing your average sugar over the last three months."},
    "eGFR": {"nl": "eGFR: hoe goed je nieren je bloed zuiveren.", "en": "eGFR: how well your kidneys clean your blood."},
    "LDL": {"nl": "LDL: de 'slechte' cholesterol in je bloed.", "en": "LDL: the 'bad' cholesterol in your blood."},
    "mmHg": {"nl": "mmHg: de eenheid van de bloeddruk.", "en": "mmHg: the unit of blood pressure."},
    "SpO2": {"nl": "SpO2: hoeveel zuurstof er in je bloed zit.", "en": "SpO2: how much oxygen is in your blood."},
}


@dataclass
class TakeHome:
    name: str
    national_number: str | None
    goals: list[str] = field(default_factory=list)
    my_part: list[str] = field(default_factory=list)
    helpers: list[tuple[str, str, str | None]] = field(default_factory=list)  # (role, name, phone)
    next_steps: list[tuple[str, str, str]] = field(default_factory=list)  # (from day, what, role)
    alarms: list[str] = field(default_factory=list)
    glossary: list[str] = field(default_factory=list)
    call: str | None = None  # whom to call: the GP's name and phone


def masked(value: str | None) -> str | None:
    """A national number with all but its last two digits hidden."""
    if not value:
        return None
    digits = [c for c in value if c.isdigit()]
    return "•" * max(0, len(digits) - 2) + "".join(digits[-2:])


def take_home(repo: Any, principal: Principal, patient_id: str, today: date, lang: str,
              programs: Mapping[str, Program], role_codes: dict[tuple[str, str], str]) -> TakeHome:
    page = patient_page(repo, principal, patient_id, today, lang, role_codes)
    with repo.unit_of_work(principal) as uow:
        patient = uow.read("Patient", patient_id).resource or {}
    ssin = next((i.get("value") for i in patient.get("identifier") or () if i.get("system") == SSIN), None)
    out = TakeHome(name=page.name, national_number=masked(ssin))
    out.goals = [g.text + (f" ({g.target})" if g.target else "") for g in page.goals]
    in_plan = [p for p in programs.values()
               if any(str(c).split("|", 1)[0] == p.url for plan in page.plans for c in plan.get("instantiatesCanonical") or ())]
    seen: set[str] = set()
    for program in in_plan:
        for a in program.activities:
            if a.instructions is not None:
                text = a.instructions.in_language(lang)
                if text not in seen:
                    seen.add(text)
                    out.my_part.append(text)
        for trigger in program.triggers:
            if trigger.when.observation is not None and trigger.title is not None:
                text = trigger.title.in_language(lang)
                if text not in out.alarms:
                    out.alarms.append(text)
    out.helpers = [(m.role, m.name, m.phone) for m in page.team]
    gp = next((m for m in page.team if m.role == "gp"), None)
    if gp is not None:
        out.call = f"{gp.name}" + (f", {gp.phone}" if gp.phone else "")
    for lane, tasks in sorted(page.lanes.items()):
        for task in tasks:
            if not task.done:
                out.next_steps.append((task.opens[:10], task.title, lane))
    out.next_steps.sort()
    words = " ".join([*out.goals, *out.my_part])
    out.glossary = [v.get(lang, v["en"]) for k, v in GLOSSARY.items() if k in words]
    return out
