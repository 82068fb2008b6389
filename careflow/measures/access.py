"""Who may see which quality-indicator figures.

Aggregates (summary MeasureReports) follow the team financing's rule
(``careflow.population.shared_views``): the region (a care coach of the region's Organization, a
system client, the command line) sees every team; a care coach sees their own team(s), counted over
their team's patients only; everyone else is refused. Drill-down (subject-list and individual
reports) lists only the patients the caller may see through the repository port, so it follows the
care-team and consent rules exactly as the API does.
"""

from __future__ import annotations

from collections.abc import Iterable

from careflow.access.principal import Principal
from careflow.population.shared_views import NotForYou, visible_teams


class NoAggregates(NotForYou):
    """The caller may not see indicator aggregates."""


def aggregate_teams(principal: Principal, regions: Iterable[str]) -> frozenset[str] | None:
    """The teams (``Organization/<id>``) whose patients ``principal``'s aggregates count; None: the
    whole region. Raises NoAggregates for anyone else."""
    try:
        return visible_teams(principal, regions)
    except NotForYou:
        raise NoAggregates("quality-indicator aggregates are for the team coach and the region") from None
