"""Configuration of the opportunity service, from OPPSTREAM_* environment variables (SPEC §6)."""

from pathlib import Path
from urllib.parse import unquote, urlsplit

from chassis.settings import OppstreamSettings, sqlalchemy_url
from chassis.sql.engines import POOL_WAIT_SECONDS

__all__ = ["Settings", "eventsourcing_env", "sqlalchemy_url"]
from pydantic import Field, field_validator


class Settings(OppstreamSettings):
    eventstore_url: str = Field(
        default="sqlite:///var/eventstore.db",
        description="sqlite:///path or postgresql://user:password@host:port/database",
    )
    intake_group: str = Field(default="opportunity.intake", min_length=1)
    commands_group: str = Field(default="opportunity.commands", min_length=1)
    relay_batch: int = Field(default=2000, ge=1, le=100_000)
    relay_idle_poll_ms: int = Field(default=100, ge=5, le=60_000)
    relay_log_check_ms: int = Field(
        default=5000,
        ge=100,
        le=600_000,
        description="how often an idle relay asks the broker whether it lost its log",
    )
    relay_reader_groups: list[str] = Field(
        default=["projections", "reminders"],
        min_length=1,
        description="the consumer groups reading crm.opportunity.events whose commits tell the "
        "relay what it must publish again after the broker lost its log (JSON list)",
    )
    group_commit_max: int = Field(default=256, ge=1, le=10_000)
    group_commit_writers: int | None = Field(
        default=None,
        ge=1,
        le=8,
        description="unset: 2 on PostgreSQL with one worker process, else 1",
    )
    aggregate_cache_size: int = Field(default=10_000, ge=0)
    projections_url: str = Field(
        default="http://127.0.0.1:8001",
        description="where a browser reaches the projections service: the workbench's "
        "attainment and standings (its origin must be in that service's CORS origins)",
    )
    reminders_url: str = Field(
        default="http://127.0.0.1:8002",
        description="where a browser reaches the reminders service: the workbench's inbox",
    )

    @field_validator("projections_url", "reminders_url")
    @classmethod
    def _web_address(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("an http:// or https:// address, as a browser reaches it")
        return url.rstrip("/")

    @field_validator("eventstore_url")
    @classmethod
    def _known_store(cls, url: str) -> str:
        eventsourcing_env(url)
        return url

    @property
    def writers(self) -> int:
        """SQLite takes one writer at a time; PostgreSQL overlaps one commit's flush with the
        next batch's work; several worker processes already overlap theirs."""
        if self.group_commit_writers is not None:
            return self.group_commit_writers
        return 1 if self.eventstore_url.startswith("sqlite") or self.workers > 1 else 2


def eventsourcing_env(url: str) -> dict[str, str]:
    """The `eventsourcing` persistence settings for a store URL."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = url.removeprefix("sqlite:///")
        if not path or path == url:
            raise ValueError("a SQLite store URL is sqlite:///relative/path or sqlite:////abs/path")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "30",
        }
    if parts.scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        database = parts.path.lstrip("/")
        if not database or not parts.hostname:
            raise ValueError("a PostgreSQL store URL is postgresql://user:password@host:port/db")
        return {
            "PERSISTENCE_MODULE": "opportunity.adapters.pgrecorder:Factory",
            "APPLICATION_RECORDER_TOPIC": "opportunity.adapters.pgrecorder:OrderedEventRecorder",
            "POSTGRES_DBNAME": database,
            "POSTGRES_HOST": parts.hostname,
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_POOL_SIZE": "10",
            "POSTGRES_MAX_OVERFLOW": "10",
            # eventsourcing's name for how long its pool waits for a connection
            "POSTGRES_CONNECT_TIMEOUT": str(POOL_WAIT_SECONDS),
        }
    raise ValueError(f"store URL scheme {parts.scheme!r}: use sqlite:/// or postgresql://")
