"""Configuration of the projections service, from OPPSTREAM_* environment variables (SPEC §6)."""

from pydantic import Field, field_validator

from chassis.settings import OppstreamSettings, check_store_url, sqlalchemy_url
from contracts import topics

__all__ = ["Settings", "sqlalchemy_url"]


class Settings(OppstreamSettings):
    projections_db_url: str = Field(
        default="sqlite:///var/projections.db",
        description="sqlite:///path or postgresql://user:password@host:port/database",
    )
    projections_group: str = Field(
        default="projections", min_length=1, description="the Kafka consumer group"
    )
    projections_topic: str = Field(
        default=topics.OPPORTUNITY_EVENTS,
        min_length=1,
        description="the events topic (only tests and benches name another)",
    )
    projections_batch_max: int = Field(
        default=5000, ge=1, le=50_000, description="most records applied in one transaction"
    )
    projections_currency: str = Field(
        default="CNY",
        pattern=r"^[A-Z]{3}$",
        description="amounts in this currency are summed in the reports; others are listed apart",
    )

    @field_validator("projections_db_url")
    @classmethod
    def _known_store(cls, url: str) -> str:
        return check_store_url(url)
