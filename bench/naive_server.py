"""The baseline of bench/commands.py: FastAPI + eventsourcing, one create per transaction,
no group commit, no index, no idempotency: what a first naive version would do."""

import os
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from contracts.customer import Customer
from contracts.rules import load_rulebook
from opportunity.application.app import OpportunityApp
from opportunity.domain.opportunity import Opportunity
from opportunity.settings import eventsourcing_env


class CreateBody(BaseModel):
    type: str
    customer: Customer


def build() -> FastAPI:
    env = eventsourcing_env(os.environ["BENCH_STORE_URL"])
    env.pop("APPLICATION_RECORDER_TOPIC", None)  # eventsourcing's recorder as it ships
    store = OpportunityApp(load_rulebook(), env=env)
    api = FastAPI()

    @api.post("/opportunities", status_code=201)
    def create(body: CreateBody) -> dict[str, Any]:
        opportunity = Opportunity(
            id=uuid4(),
            type=body.type,
            pipeline_id="new",
            stage="initial_contact",
            customer=body.customer.model_dump(mode="json"),
            owner_id="rep-1",
            team_id="east",
            title=None,
            amount=None,
            currency="CNY",
            expected_close_on=None,
            source=None,
            lead_id=None,
            renewal_of=None,
            at=datetime.now(UTC),
            actor="rep-1",
        )
        store.save(opportunity)
        return {"id": str(opportunity.id), "version": opportunity.version}

    return api


if __name__ == "__main__":
    uvicorn.run(build(), host="127.0.0.1", port=int(os.environ["BENCH_PORT"]), log_level="warning")
