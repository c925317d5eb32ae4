"""Configuration of the reminders service, from OPPSTREAM_* environment variables (SPEC §6)."""

from pydantic import Field, field_validator

from chassis.settings import OppstreamSettings, check_store_url


class Settings(OppstreamSettings):
    reminders_db_url: str = Field(
        default="sqlite:///var/reminders.db",
        description="sqlite:///path or postgresql://user:password@host:port/database",
    )
    reminders_group: str = Field(
        default="reminders", min_length=1, description="consumer group on the events topic"
    )
    reminders_tick_ms: int = Field(
        default=200,
        ge=10,
        le=1000,
        description="the scheduler looks for due timers at least this often (at most 1 s)",
    )
    reminders_batch: int = Field(
        default=2000, ge=1, le=50_000, description="timers fired (and reminders sent) per round"
    )
    opportunity_url: str = Field(
        default="http://127.0.0.1:8000",
        description="the opportunity service, whose /notifications feed `simulate` replays",
    )

    @field_validator("reminders_db_url")
    @classmethod
    def _known_store(cls, url: str) -> str:
        return check_store_url(url)
