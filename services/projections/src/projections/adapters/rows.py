"""The rows the store writes: each table's columns in the order it writes them, the row of an
applied event, and `bi_pipeline_stage` as the rules file has it."""

from operator import itemgetter
from typing import Any

import orjson
import sqlalchemy as sa

from contracts.envelope import Envelope
from contracts.rules import Rulebook
from projections.adapters.schema import pipeline_stage
from projections.domain.state import HISTORY_FIELDS

EVENT_COLUMNS = (
    "event_id",
    "opportunity_id",
    "version",
    "event_type",
    "schema_version",
    "occurred_at",
    "recorded_at",
    "actor",
    "payload",
    "projected",
)
HISTORY_COLUMNS = ("opportunity_id", "version", "occurred_at", "event_type", *HISTORY_FIELDS)
VISIT_COLUMNS = (
    "opportunity_id",
    "visit_no",
    "pipeline_id",
    "stage",
    "stage_index",
    "entered_at",
    "entered_version",
    "entry_kind",
    "exited_at",
    "exited_version",
    "exit_kind",
    "exited_to",
    "paused_seconds",
    "deferred_seconds",
    "dwell_seconds",
    "paused_working_days",
    "working_days",
    "type",
    "tier",
    "ownership",
    "created_at",
    "voided_at",
)
POSITION_COLUMNS = ("topic", "partition", "next_offset", "log_epoch")
HELD_COLUMNS = ("event_id", "opportunity_id", "version", "envelope")
POISON_COLUMNS = ("topic", "partition", "offset", "error", "value")

visit_values = itemgetter(*VISIT_COLUMNS)


def values_of(columns: tuple[str, ...], row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c] for c in columns)


def event_row(event: Envelope, projected: bool) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.opportunity_id,
        event.version,
        event.event_type,
        event.schema_version,
        event.occurred_at,
        event.recorded_at,
        event.actor,
        orjson.dumps(event.payload).decode(),
        projected,
    )


def write_pipeline_stages(conn: sa.Connection, rules: Rulebook) -> None:
    """`bi_pipeline_stage` as the rules file has it now (the views join it)."""
    rows = []
    for p in rules.pipelines:
        for i, stage in enumerate(p.stages):
            last = i == len(p.stages) - 1
            rows.append(
                {
                    "pipeline_id": p.id,
                    "stage": stage.id,
                    "stage_index": i,
                    "next_stage": None if last else p.stages[i + 1].id,
                    "is_last": int(last),
                    "type": p.type.value,
                    "tier": p.tier.value if p.tier else None,
                    "label_zh": stage.label.zh,
                    "label_en": stage.label.en,
                    "probability": stage.probability,
                    "forecast_category": stage.forecast_category.value,
                }
            )
    conn.execute(sa.delete(pipeline_stage))
    conn.execute(sa.insert(pipeline_stage), rows)
