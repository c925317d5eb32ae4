"""Configuration every oppstream service shares, from OPPSTREAM_* environment variables
(SPEC §6); each service's own settings add its store."""

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class OppstreamSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPPSTREAM_", extra="ignore")

    rules_file: Path | None = Field(default=None, description="unset: the shipped default")
    auth_file: Path | None = Field(
        default=None, description="unset: dev tokens are written to var/auth.json and printed"
    )
    timezone: str = "Asia/Shanghai"
    kafka_bootstrap: str | None = Field(
        default=None, description="host:port,…; unset: no Kafka (HTTP only)"
    )
    topic_partitions: int = Field(default=6, ge=1, le=1000)
    topic_replication: int = Field(default=1, ge=1, le=10)
    kafka_idempotent_producer: bool = Field(
        default=False, description="on for Apache Kafka; Tansu has no idempotent producer"
    )
    kafka_request_timeout_ms: int = Field(default=40_000, ge=1000)
    kafka_session_timeout_ms: int = Field(default=10_000, ge=3000, le=300_000)
    kafka_fetch_max_wait_ms: int = Field(default=10, ge=0, le=10_000)
    workers: int = Field(
        default=1,
        ge=1,
        le=32,
        description="processes serving the same port (each with its own consumers); "
        "more than one only with a PostgreSQL store",
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1, description="a larger request body is refused with 413 unread"
    )
    cors_origins: list[str] = Field(
        default=[],
        description="origins whose pages may call the service from a browser, e.g. the "
        'workbench\'s (JSON list: ["http://127.0.0.1:8000"])',
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one JSON object a line"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{name!r} is not an IANA time zone") from exc
        return name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def check_store_url(url: str) -> str:
    """A store URL we can open: sqlite:///path or postgresql://…; else ValueError."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "sqlite":
        if not url.removeprefix("sqlite:///") or not url.startswith("sqlite:///"):
            raise ValueError("a SQLite URL is sqlite:///relative/path or sqlite:////abs/path")
        return url
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return url
    raise ValueError(f"store URL scheme {scheme!r}: use sqlite:/// or postgresql://")


def sqlalchemy_url(url: str) -> str:
    """The store for SQLAlchemy (psycopg 3 driver for PostgreSQL); SQLite's folder made."""
    scheme, rest = url.split("://", 1)
    if scheme.startswith("postgres"):
        return f"postgresql+psycopg://{rest}"
    path = url.removeprefix("sqlite:///")
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return url
