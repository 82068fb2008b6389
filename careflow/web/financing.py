"""The team-financing page: the statement of one year for the team coach (their team) or the region.

The statement is computed as the system over the region's history (``careflow.engine.financing``)
and narrowed to the teams the caller may see (``careflow.population.shared_views``) before any
line is shown; a caller who may see none is refused before anything is read. It names no patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from babel.numbers import format_currency

from careflow.access.principal import Principal
from careflow.engine.financing import Directory, financing
from careflow.population.financing import Statement
from careflow.population.shared_views import NotForYou, may_see_aggregates, visible_teams
from careflow.store.port import Repository

LOCALES = {"nl": "nl_BE", "en": "en_GB", "fr": "fr_BE"}


@dataclass(frozen=True)
class FinancingView:
    year: int
    statement: Statement
    directory: Directory
    everything: bool  # the region's view (every team)
    lang: str

    def euro(self, value: Decimal) -> str:
        return format_currency(value, "EUR", locale=LOCALES.get(self.lang, "nl_BE"))

    def team(self, ref: str | None) -> str:
        return self.directory.team(ref)

    def practice(self, ref: str | None) -> str:
        return self.directory.practice(ref)


def financing_view(repo: Repository, principal: Principal, year: int, as_of: datetime | None, today: date,
                   lang: str) -> FinancingView:
    """Raises NotForYou for anyone but a care coach or the region."""
    if not may_see_aggregates(principal):
        raise NotForYou("the team financing is for the team coach and the region")
    statement, directory = financing(repo, year, as_of, today if as_of is None else min(today, as_of.date()))
    teams = visible_teams(principal, directory.regions)
    return FinancingView(year, statement.for_teams(teams), directory, teams is None, lang)


def for_csv(view: FinancingView, by: str | None) -> str:
    from careflow.population.financing_report import breakdown_csv, team_csv

    st, d = view.statement, view.directory
    if by == "group":
        return breakdown_csv(st.groups, "group", d.team, lambda k: k or "unknown")
    if by == "practice":
        return breakdown_csv(st.practices, "practice", d.team, d.practice)
    return team_csv(st, d.team)
