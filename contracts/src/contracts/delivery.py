"""The rules file's `delivery` section (SPEC §10.2): the channels reminders are delivered to
(a webhook, a 企业微信, 钉钉 or 飞书 group robot), which reminders each takes, and how often a
failed delivery is tried before it is parked."""

from datetime import timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from contracts.customer import Tier
from contracts.durations import Duration
from contracts.reminders import ReminderKind


class ChannelKind(StrEnum):
    WEBHOOK = "webhook"
    WECOM = "wecom"
    DINGTALK = "dingtalk"
    FEISHU = "feishu"


# The kinds whose requests are signed with the channel's secret.
SIGNED_KINDS = frozenset({ChannelKind.WEBHOOK, ChannelKind.DINGTALK, ChannelKind.FEISHU})


class Audience(StrEnum):
    """Who a channel speaks to: the team's reps (`team`), or its manager (`manager`), who is
    sent the team's escalations."""

    TEAM = "team"
    MANAGER = "manager"


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChannelMatch(_Rule):
    """The reminders a channel takes; a missing key takes any."""

    team_id: str | None = Field(default=None, min_length=1, max_length=100)
    tier: Tier | None = None


class Channel(_Rule):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=100)
    kind: ChannelKind
    url: str = Field(min_length=1, max_length=2000, repr=False)
    secret: str | None = Field(
        default=None,
        repr=False,
        validate_default=True,
        description="HMAC key (webhook, dingtalk, feishu); never logged",
    )
    to: Audience = Field(
        default=Audience.TEAM,
        description="manager: the team manager's channel, sent the team's escalations",
    )
    match: ChannelMatch = Field(default_factory=ChannelMatch)
    kinds: tuple[ReminderKind, ...] | None = Field(
        default=None,
        min_length=1,
        description="the reminder kinds it takes; default every kind (to: manager, escalation)",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        # The message never quotes the url: its query often holds the robot's access token.
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return url

    @field_validator("secret")
    @classmethod
    def _secret_when_signed(cls, secret: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        if kind in SIGNED_KINDS and not secret:
            raise ValueError(f"required for a {kind.value} channel")
        return secret

    @property
    def taken_kinds(self) -> frozenset[ReminderKind]:
        if self.kinds is not None:
            return frozenset(self.kinds)
        if self.to is Audience.MANAGER:
            return frozenset({ReminderKind.ESCALATION})
        return frozenset(ReminderKind)

    def takes(self, kind: str, team_id: str | None, tier: str | None) -> bool:
        """Whether a reminder of this kind, team and tier goes to this channel."""
        return (
            kind in self.taken_kinds
            and (self.match.team_id is None or self.match.team_id == team_id)
            and (self.match.tier is None or self.match.tier == tier)
        )


class Delivery(_Rule):
    attempts: int = Field(default=6, ge=1, le=100, description="tries before it is parked")
    first_backoff: Duration = Field(
        default=timedelta(seconds=1),
        description="wait after the first failure, doubled after each next one, with jitter",
    )
    timeout: Duration = Field(default=timedelta(seconds=5), description="of one request")
    channels: tuple[Channel, ...] = ()

    @field_validator("first_backoff", "timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value

    @field_validator("channels")
    @classmethod
    def _ids_differ(cls, channels: tuple[Channel, ...]) -> tuple[Channel, ...]:
        ids = [c.id for c in channels]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"channel ids repeat: {repeated}")
        return channels

    def channel(self, channel_id: str) -> Channel | None:
        return next((c for c in self.channels if c.id == channel_id), None)

    def channels_for(self, kind: str, team_id: str | None, tier: str | None) -> tuple[str, ...]:
        """The ids of the channels a reminder goes to, in the rules file's order."""
        return tuple(c.id for c in self.channels if c.takes(kind, team_id, tier))
