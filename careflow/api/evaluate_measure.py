"""``Measure/[id]/$evaluate-measure`` (R4): a MeasureReport for one indicator over a calendar month
or year, computed by the store (``careflow.engine.measures``) and narrowed to the caller.

``periodStart`` / ``periodEnd`` must span exactly one calendar month or year (the periods careflow
stores); ``reportType`` is ``population`` (the default without ``subject``: the summary, for the
team coach and the region only), ``subject-list`` (the patients the caller may see) or ``subject``
(the default with ``subject``: one patient's report, a patient the caller may see).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from typing import Any

from careflow.api.errors import InvalidRequest
from careflow.api.interactions import Context, FhirRequest, FhirResult
from careflow.errors import Forbidden, NotFound
from careflow.store.port import UnitOfWork

DEFINITION = "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure"
_PATIENT = re.compile(r"^(Patient/)?[A-Za-z0-9\-.]{1,64}$")
REPORT_TYPES = ("subject", "subject-list", "population")


def _params(req: FhirRequest) -> dict[str, str]:
    out = dict(req.params)
    body: Any = req.resource
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        for p in body.get("parameter") or ():
            if isinstance(p, dict) and isinstance(p.get("name"), str):
                for key in ("valueDate", "valueDateTime", "valueCode", "valueString"):
                    if isinstance(p.get(key), str):
                        out[p["name"]] = p[key]
                if isinstance((p.get("valueReference") or {}).get("reference"), str):
                    out[p["name"]] = p["valueReference"]["reference"]
    return out


def _period(start: str | None, end: str | None) -> Any:
    from careflow.measures.period import parse_period

    if not start or not end:
        raise InvalidRequest("$evaluate-measure needs periodStart and periodEnd", expression="periodStart")
    try:
        s, e = date.fromisoformat(start[:10]), date.fromisoformat(end[:10])
    except ValueError:
        raise InvalidRequest("periodStart and periodEnd must be dates (YYYY-MM-DD)", expression="periodStart") from None
    for label in (f"{s.year:04d}-{s.month:02d}", f"{s.year:04d}"):
        p = parse_period(label)
        if (p.start, p.end) == (s, e):
            return p
    raise InvalidRequest("careflow evaluates one calendar month or year: periodStart its first day, periodEnd its last",
                         expression="periodEnd")


def register(state: Any) -> None:
    repo = state.repository

    def evaluate_measure(uow: UnitOfWork, req: FhirRequest, ctx: Context) -> FhirResult:
        from careflow.engine.measures import evaluate_for
        from careflow.measures.access import NoAggregates
        from careflow.measures.loader import load_measures

        if req.id is None:
            raise InvalidRequest("$evaluate-measure runs on one Measure: Measure/[id]/$evaluate-measure")
        params = _params(req)
        unknown = sorted(set(params) - {"periodStart", "periodEnd", "reportType", "subject"})
        if unknown:
            raise InvalidRequest(f"$evaluate-measure takes periodStart, periodEnd, reportType and subject, not {unknown[0]}",
                                 expression=unknown[0])
        defs = {m.id: m for m in load_measures()}
        m = defs.get(req.id)
        if m is None:
            raise NotFound("Measure", req.id)
        period = _period(params.get("periodStart"), params.get("periodEnd"))
        subject = params.get("subject")
        report_type = params.get("reportType") or ("subject" if subject else "population")
        if report_type not in REPORT_TYPES:
            raise InvalidRequest(f"reportType must be one of {', '.join(REPORT_TYPES)}", expression="reportType")
        if report_type == "subject" and not subject:
            raise InvalidRequest("reportType subject needs a subject (Patient/[id])", expression="subject")
        if subject and report_type != "subject":
            raise InvalidRequest("subject goes with reportType subject", expression="subject")
        if subject and not _PATIENT.match(subject):
            raise InvalidRequest("subject must be Patient/[id]", expression="subject")
        today = ctx.now().astimezone(timezone.utc).date() if isinstance(ctx.now(), datetime) else date.today()
        try:
            report = evaluate_for(repo, uow.principal, m, period, today, report_type, subject)
        except NoAggregates as exc:
            raise Forbidden(str(exc)) from None
        return FhirResult(200, report)

    state.operations[("Measure", "$evaluate-measure")] = evaluate_measure
    state.operation_docs.append(("Measure", "$evaluate-measure", DEFINITION,
                                 "One indicator over a calendar month or year: population (the summary, team coach and region "
                                 "only; a coach's counts cover their own team), subject-list or subject (patients the caller may see)."))
