"""A new Opportunity for domain tests: the defaults they share, any of them overridden."""

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from contracts.rules import Pipeline, load_rulebook
from opportunity.domain.opportunity import Opportunity

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NEW = load_rulebook().pipeline("new")


def new_opportunity(
    pipeline: Pipeline = NEW,
    stage: str | None = None,
    *,
    tier: str = "KA",
    **overrides: Any,
) -> Opportunity:
    """Created at `stage` (the pipeline's first by default) by rep-1 of team east, at T0."""
    fields: dict[str, Any] = {
        "id": uuid4(),
        "type": pipeline.type,
        "pipeline_id": pipeline.id,
        "stage": stage or pipeline.stage_ids[0],
        "customer": {
            "uscc": "91350100M000100Y43",
            "name": "Acme",
            "tier": tier,
            "ownership": "SOE",
        },
        "owner_id": "rep-1",
        "team_id": "east",
        "title": None,
        "amount": None,
        "currency": "CNY",
        "expected_close_on": None,
        "source": None,
        "lead_id": None,
        "renewal_of": None,
        "at": T0,
        "actor": "rep-1",
    }
    return Opportunity(**(fields | overrides))
