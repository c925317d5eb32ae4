"""The topics stored events and snapshots go by: the ones today's classes record, and the ones
earlier releases recorded, which keep resolving (`register_topic`) and keep being relayed.

A topic is a class's module and name. The events v0.5.0 and earlier recorded name the
modules the classes lived in then (`opportunity.domain`, `opportunity.idempotency`); the
golden stores (services/opportunity/tests/golden/) hold them, and
test_golden_store.STORED_TOPICS pins them.
"""

from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

from contracts.competitions import COMPETITION_PAYLOADS
from contracts.customer_record import CUSTOMER_PAYLOADS
from contracts.opportunity import PAYLOADS
from contracts.targets import TARGET_PAYLOADS
from opportunity.application.idempotency import IdempotentAnswer
from opportunity.domain.competition import Competition
from opportunity.domain.customer_account import CustomerAccount
from opportunity.domain.customer_record import CustomerRecord
from opportunity.domain.opportunity import Opportunity
from opportunity.domain.target import Target
from opportunity.domain.uniqueness import ActiveOpportunityIndex

# The modules each aggregate class was recorded from before it moved, oldest first.
FORMER_MODULES: dict[type[Aggregate], tuple[str, ...]] = {
    Opportunity: ("opportunity.domain",),
    ActiveOpportunityIndex: ("opportunity.domain",),
    CustomerAccount: ("opportunity.domain",),
    IdempotentAnswer: ("opportunity.idempotency",),
}


def _classes(aggregate: type[Aggregate]) -> list[type]:
    """The aggregate class and its event classes (defined on it by `@event`)."""
    prefix = f"{aggregate.__qualname__}."
    events = [
        value
        for value in vars(aggregate).values()
        if isinstance(value, type)
        and issubclass(value, Aggregate.Event)
        and value.__qualname__.startswith(prefix)
    ]
    return [aggregate, *events]


def _register_former_topics() -> None:
    for aggregate, modules in FORMER_MODULES.items():
        for cls in _classes(aggregate):
            for module in modules:
                register_topic(f"{module}:{cls.__qualname__}", cls)


_register_former_topics()

# Every topic an Opportunity event is stored under: what the listing reads from the log.
OPPORTUNITY_TOPICS = [
    f"{module}:{Opportunity.__qualname__}.{name}"
    for module in (Opportunity.__module__, *FORMER_MODULES[Opportunity])
    for name in PAYLOADS
]
# The topics of the customer record's events: what the customer listing reads.
CUSTOMER_TOPICS = [
    f"{CustomerRecord.__module__}:{CustomerRecord.__qualname__}.{name}"
    for name in CUSTOMER_PAYLOADS
]
# The topics of the targets' and the competitions' events (SPEC §9): what their listings read.
TARGET_TOPICS = [f"{Target.__module__}:{Target.__qualname__}.{name}" for name in TARGET_PAYLOADS]
COMPETITION_TOPICS = [
    f"{Competition.__module__}:{Competition.__qualname__}.{name}" for name in COMPETITION_PAYLOADS
]
# Every event that travels on `crm.opportunity.events`: what the relay and the notification
# feed read.
EVENT_TOPICS = [*OPPORTUNITY_TOPICS, *CUSTOMER_TOPICS, *TARGET_TOPICS, *COMPETITION_TOPICS]
