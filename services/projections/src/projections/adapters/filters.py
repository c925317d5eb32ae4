"""The reports' filters (SPEC §4.2) as SQL conditions, and the columns of an opportunity no
event changes after its creation."""

from typing import Any

import sqlalchemy as sa

from projections.application.read_model import Query


def beyond_segment(q: Query) -> bool:
    """Whether the query filters on what an opportunity's segment does not hold: its owner,
    team, a principal's reach or its classification."""
    return any(
        value is not None
        for value in (q.owner_id, q.team_id, q.scope_owner_id, q.scope_team_id, q.classified_by)
    )


def filters(cols: Any, q: Query, *, segment: bool) -> list[sa.ColumnElement[bool]]:
    """The query's filters over columns named as in `bi_opportunity` (the segment's too, or
    not when the rows are already of the segment)."""
    found: list[sa.ColumnElement[bool]] = []
    names = (
        ("type", "tier", "ownership", "classified_by", "owner_id", "team_id")
        if segment
        else ("owner_id", "team_id")
    )
    for name in names:
        value = getattr(q, name)
        if value is not None:
            found.append(cols[name] == value)
    if q.scope_owner_id is not None:
        found.append(cols.owner_id == q.scope_owner_id)
    if q.scope_team_id is not None:
        found.append(cols.team_id == q.scope_team_id)
    if q.created_from is not None:
        found.append(cols.created_at >= q.created_from)
    if q.created_to is not None:
        found.append(cols.created_at < q.created_to)
    return found


# Columns no event changes after the creation; the others are the history's (HISTORY_FIELDS),
# which the `as_of` state gives.
FIXED = (
    "id",
    "pipeline_id",
    "type",
    "tier",
    "ownership",
    "classified_by",
    "uscc",
    "customer_name",
    "created_at",
)
