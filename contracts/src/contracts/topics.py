"""Kafka topic names: the only place they are spelled out."""

from typing import Final

OPPORTUNITY_EVENTS: Final = "crm.opportunity.events"
OPPORTUNITY_WON: Final = "crm.opportunity.won"
OPPORTUNITY_COMMANDS: Final = "crm.opportunity.commands"
# Added to the SPEC's topics: where command bytes that are not a command go.
OPPORTUNITY_COMMANDS_DLQ: Final = "crm.opportunity.commands.dlq"
LEADS_QUALIFIED: Final = "crm.leads.qualified"
LEADS_QUALIFIED_DLQ: Final = "crm.leads.qualified.dlq"
LEADS_REJECTED: Final = "crm.leads.rejected"
REMINDERS: Final = "crm.reminders"

ALL: Final = (
    OPPORTUNITY_EVENTS,
    OPPORTUNITY_WON,
    OPPORTUNITY_COMMANDS,
    OPPORTUNITY_COMMANDS_DLQ,
    LEADS_QUALIFIED,
    LEADS_QUALIFIED_DLQ,
    LEADS_REJECTED,
    REMINDERS,
)
