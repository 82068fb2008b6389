"""The team-financing statement written out: CSV for a spreadsheet, JSON, and a FHIR R4 Invoice.

Why an **Invoice** and not a MeasureReport: what a payer books is money owed to a payee. R4's
Invoice carries it as such (``Money`` with a currency per line, ``totalNet``/``totalGross``, the
teams as participants), and its price components keep the basis of each amount beside it (the
enrolled patients and the patient-days as ``informational`` components with a ``factor``), so a
payer's system reads the sum without interpreting anything. A MeasureReport counts populations for
a Measure; money in it would be a bare score that a payer must be told how to read.

The team lines are the payment itself: each is the basis of one payee's money and names no
patient, so they are shown in full (a payer cannot pay "fewer than 5"). The breakdowns by group
and by practice are statistics over small cells: there, fewer than 5 patients is shown as ``<5``
with no days or amount (the team line still carries the money). Only consented patient-days are
ever counted: the payment stops when consent is withdrawn, so the payer's view is a shared view in
that sense too.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from careflow.naming import BASE
from careflow.population.financing import YEARLY_AMOUNT, Line, Statement
from careflow.population.shared_views import SUPPRESS_BELOW
from careflow.population.spreadsheet import text_cell

FINANCING_IDENTIFIER = f"{BASE}/sid/team-financing"
CHARGE_ITEM = f"{BASE}/CodeSystem/charge-item"  # team-financing
PRICE_BASIS = f"{BASE}/CodeSystem/price-basis"  # enrolled-patients | patient-days
INVOICE_TYPE = f"{BASE}/CodeSystem/invoice-type"  # team-financing
PARTICIPANT_ROLE = f"{BASE}/CodeSystem/invoice-participant-role"  # payee

Names = Callable[[str | None], str]


def euro(value: Decimal) -> str:
    return f"{value:.2f}"


def _period(st: Statement) -> dict[str, str]:
    return {"start": st.start.isoformat(), "end": st.end.isoformat()}


def team_csv(st: Statement, team_name: Names) -> str:
    """One line per team and a total line: team, enrolled patients, patient-days, amount in euro."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["team", "enrolled_patients", "patient_days", "amount_eur"])
    for line in st.teams:
        w.writerow([text_cell(team_name(line.team)), line.patients, line.days, euro(line.amount)])
    w.writerow(["total", st.total_patients, st.total_days, euro(st.total)])
    return out.getvalue()


def _cell(line: Line) -> tuple[str, str, str]:
    if line.suppressed:
        return f"<{SUPPRESS_BELOW}", "", ""
    return str(line.patients), str(line.days), euro(line.amount)


def breakdown_csv(lines: tuple[Line, ...], what: str, team_name: Names, key_name: Names) -> str:
    """Per team and group (or practice); cells of fewer than 5 patients suppressed."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["team", what, "enrolled_patients", "patient_days", "amount_eur"])
    for line in lines:
        w.writerow([text_cell(team_name(line.team)), text_cell(key_name(line.key)), *_cell(line)])
    return out.getvalue()


def _line_json(line: Line, team_name: Names, suppress: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"team": line.team, "name": team_name(line.team)}
    if suppress and line.suppressed:
        return {**out, "enrolled_patients": f"<{SUPPRESS_BELOW}", "suppressed": True}
    return {**out, "enrolled_patients": line.patients, "patient_days": line.days, "amount_eur": euro(line.amount)}


def statement_json(st: Statement, team_name: Names, key_name: Names | None = None,
                   by: str | None = None) -> dict[str, Any]:
    """The statement as one JSON object; amounts as strings (exact decimals, two places)."""
    out: dict[str, Any] = {
        "period": _period(st), "as_of": st.as_of.isoformat(), "rate_eur_per_year": euro(YEARLY_AMOUNT),
        "teams": [_line_json(t, team_name, False) for t in st.teams],
        "total": {"enrolled_patients": st.total_patients, "patient_days": st.total_days, "amount_eur": euro(st.total)},
    }
    if by in ("group", "practice"):
        lines = st.groups if by == "group" else st.practices
        names = key_name or (lambda k: k or "")
        out[f"by_{by}"] = [{**_line_json(x, team_name, True), by: x.key, f"{by}_name": names(x.key)} for x in lines]
    return out


def invoice(st: Statement, team_name: Names) -> dict[str, Any]:
    """The statement as a FHIR R4 Invoice: one line per team, the total the sum of the lines."""
    year = st.start.year if (st.start.year == st.end.year and st.start.month == 1 and st.start.day == 1
                             and st.end.month == 12 and st.end.day == 31) else None
    label = str(year) if year else f"{st.start.isoformat()}..{st.end.isoformat()}"
    closed = st.as_of.date() > st.end
    lines: list[dict[str, Any]] = []
    participants: list[dict[str, Any]] = []
    for seq, line in enumerate(st.teams, start=1):
        name = team_name(line.team)
        lines.append({
            "sequence": seq,
            "chargeItemCodeableConcept": {
                "coding": [{"system": CHARGE_ITEM, "code": "team-financing", "display": "Team financing"}],
                "text": f"Team financing {label}: {name}"},
            "priceComponent": [
                {"type": "base", "amount": {"value": float(line.amount), "currency": "EUR"}},
                {"type": "informational",
                 "code": {"coding": [{"system": PRICE_BASIS, "code": "enrolled-patients", "display": "Enrolled patients"}]},
                 "factor": line.patients},
                {"type": "informational",
                 "code": {"coding": [{"system": PRICE_BASIS, "code": "patient-days", "display": "Patient-days"}]},
                 "factor": line.days},
            ],
        })
        if line.team and "/" in line.team:
            participants.append({"role": {"coding": [{"system": PARTICIPANT_ROLE, "code": "payee", "display": "Payee"}],
                                          "text": f"line {seq}"},
                                 "actor": {"reference": line.team, "display": name}})
    total = {"value": float(st.total), "currency": "EUR"}
    out: dict[str, Any] = {
        "resourceType": "Invoice",
        "id": f"team-financing-{label.replace('..', '-')}",
        "identifier": [{"system": FINANCING_IDENTIFIER, "value": label}],
        "status": "issued" if closed else "draft",
        "type": {"coding": [{"system": INVOICE_TYPE, "code": "team-financing", "display": "Team financing"}],
                 "text": f"Team financing {st.start.isoformat()} to {st.end.isoformat()}"},
        "date": st.as_of.isoformat(timespec="seconds"),
        "lineItem": lines,
        "totalNet": total,
        "totalGross": total,
        "note": [{"text": (f"EUR {euro(YEARLY_AMOUNT)} per enrolled patient per year, pro rata per day (both ends "
                           f"inclusive) from inclusion to the end of the plan, withdrawal of consent or death; a patient "
                           f"counted once however many programmes; consented patient-days only; each patient's amount "
                           f"rounded half-up to the cent, lines the sum of their patients, the total the sum of the "
                           f"lines. Period {st.start.isoformat()} to {st.end.isoformat()}, as recorded up to "
                           f"{st.as_of.isoformat(timespec='seconds')}: {st.total_patients} patients, "
                           f"{st.total_days} patient-days.")}],
    }
    if participants:
        out["participant"] = participants
    if not lines:
        del out["lineItem"]
    return out
