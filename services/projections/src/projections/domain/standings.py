"""A competition's standings (SPEC §9.2): every rep with the value credited to them, ranked;
pure."""

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from contracts.competitions import CompetitionMetric

# The events each competition metric counts.
COUNTED = {
    CompetitionMetric.WON_AMOUNT: "OpportunityWon",
    CompetitionMetric.WON_COUNT: "OpportunityWon",
    CompetitionMetric.NEW_OPPORTUNITIES: "OpportunityCreated",
    CompetitionMetric.ADVANCES: "StageAdvanced",
    CompetitionMetric.FOLLOW_UPS: "FollowUpLogged",
}


def standings(
    credited: Iterable[tuple[str, str | None, Decimal]],
    reps: Iterable[tuple[str, str | None]],
) -> list[dict[str, Any]]:
    """`credited`: (owner, team at the event, value) per credit; `reps`: (rep, team) of the
    principals file, who stand with 0 when nothing was credited to them. A rep's team is the
    principals file's, else the first (by id) of the teams credited. Descending by value,
    equal values share a rank (1, 2, 2, 4), ties ordered by owner id."""
    values: dict[str, Decimal] = {}
    teams: dict[str, str | None] = {}
    for owner_id, team_id in reps:
        values.setdefault(owner_id, Decimal(0))
        teams[owner_id] = team_id
    credited_teams: dict[str, set[str]] = {}
    for owner_id, team_id, value in credited:
        values[owner_id] = values.get(owner_id, Decimal(0)) + value
        if team_id is not None:
            credited_teams.setdefault(owner_id, set()).add(team_id)
    rows = sorted(values.items(), key=lambda item: (-item[1], item[0]))
    answer: list[dict[str, Any]] = []
    rank, previous = 0, None
    for position, (owner_id, value) in enumerate(rows, start=1):
        if value != previous:
            rank, previous = position, value
        team = teams.get(owner_id) or min(credited_teams.get(owner_id, set()), default=None)
        answer.append({"rank": rank, "owner_id": owner_id, "team_id": team, "value": value})
    return answer
