"""Delivering a reminder to a channel (pure): when a failed delivery is tried again, what each
vendor is sent (the §3.4 JSON to a webhook; markdown or text to a 企业微信, 钉钉 or 飞书 group
robot) with its signature, and how a vendor's answer is read."""

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote_plus
from uuid import uuid5
from zoneinfo import ZoneInfo

import orjson

from contracts.delivery import Channel, ChannelKind
from reminders.domain.timers import REMINDER_NAMESPACE

# A delivery's status: waiting for its next attempt, taken by the channel (never sent
# again), or given up after the rules' attempts until someone retries it.
PENDING, DELIVERED, PARKED = "pending", "delivered", "parked"
STATUSES = (PENDING, DELIVERED, PARKED)

# A delivery being sent is held this long past the request's timeout before another round
# (or a copy of the service started after a crash) may send it again.
LEASE_MARGIN = timedelta(seconds=5)


def delivery_id_for(reminder_id: str, channel_id: str) -> str:
    """One delivery per reminder and channel, whoever fires the reminder."""
    return str(uuid5(REMINDER_NAMESPACE, f"{reminder_id}/deliver/{channel_id}"))


def backoff(first: timedelta, attempt: int, jitter: float) -> timedelta:
    """The wait after failed attempt `attempt` (1, 2, …): first·2^(attempt-1), of which up
    to half is taken away at random (`jitter` in [0, 1)) so that deliveries that failed together
    do not all come back together."""
    full: timedelta = first * 2 ** (attempt - 1)
    return full * (1 - jitter / 2)


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP POST to a channel. `url` may hold the robot's access token: never log it."""

    url: str
    headers: dict[str, str]
    body: bytes


KIND_LABELS = {
    "follow_up": "跟进提醒",
    "stale_warning": "停滞预警",
    "escalation": "升级提醒（主管）",
    "reclaim_due": "即将回收公海",
    "revisit_due": "重新跟进提醒",
    "pause_ended": "暂停结束",
}


def message_text(reminder: dict[str, Any], zone: ZoneInfo) -> tuple[str, str]:
    """The title and the markdown text of a reminder in Chinese: the deal, the kind, the rule,
    the due time (local), the owner."""
    kind = KIND_LABELS.get(reminder["kind"], reminder["kind"])
    due = datetime.fromisoformat(reminder["due_at"]).astimezone(zone)
    title = f"商机{kind}"
    lines = [
        f"### {title}",
        f"- 商机：{reminder['opportunity_id']}",
        f"- 类型：{kind}",
        f"- 规则：{reminder['rule_id']}",
        f"- 到期：{due:%Y-%m-%d %H:%M}",
        f"- 负责人：{reminder.get('owner_id') or '（公海）'}",
    ]
    if reminder["kind"] == "escalation":
        manager = (reminder.get("detail") or {}).get("manager_id")
        if manager:
            lines.append(f"- 主管：{manager}")
    return title, "\n".join(lines)


def webhook_signature(secret: str, body: bytes) -> str:
    """`X-Oppstream-Signature`: sha256=<hex HMAC-SHA256 of the exact body bytes>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """钉钉 robot: base64 of HMAC-SHA256 keyed by the secret over "timestamp\\nsecret",
    url-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return quote_plus(base64.b64encode(digest.digest()).decode())


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """飞书 custom bot: base64 of HMAC-SHA256 keyed by "timestamp\\nsecret" over nothing."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def request_for(channel: Channel, reminder: bytes, now: datetime, zone: ZoneInfo) -> Request:
    """What `channel` is sent for this reminder (its §3.4 bytes) at `now`."""
    json = {"Content-Type": "application/json"}
    if channel.kind is ChannelKind.WEBHOOK:
        headers = {
            **json,
            "X-Oppstream-Signature": webhook_signature(channel.secret or "", reminder),
            "Idempotency-Key": orjson.loads(reminder)["reminder_id"],
        }
        return Request(channel.url, headers, reminder)
    title, text = message_text(orjson.loads(reminder), zone)
    if channel.kind is ChannelKind.WECOM:
        body = {"msgtype": "markdown", "markdown": {"content": text}}
        return Request(channel.url, json, orjson.dumps(body))
    if channel.kind is ChannelKind.DINGTALK:
        stamp = int(now.timestamp() * 1000)
        joiner = "&" if "?" in channel.url else "?"
        url = f"{channel.url}{joiner}timestamp={stamp}&sign={dingtalk_sign(channel.secret or '', stamp)}"
        body = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
        return Request(url, json, orjson.dumps(body))
    stamp = int(now.timestamp())
    body = {
        "timestamp": str(stamp),
        "sign": feishu_sign(channel.secret or "", stamp),
        "msg_type": "text",
        "content": {"text": text.replace("### ", "")},
    }
    return Request(channel.url, json, orjson.dumps(body))


def refusal(kind: ChannelKind, status: int, body: bytes) -> str | None:
    """Why a channel's answer is a failure, or None when it took the message. Any non-2xx
    fails; the robots answer 200 with a non-zero `errcode` (企业微信, 钉钉) or `code`
    (飞书; `StatusCode` in its older answers) when they refused it."""
    if not 200 <= status < 300:
        return f"HTTP {status}"
    if kind is ChannelKind.WEBHOOK:
        return None
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"HTTP {status} without a JSON answer"
    if not isinstance(answer, dict):
        return f"HTTP {status} without a JSON object"
    for key in ("errcode", "code", "StatusCode"):
        if answer.get(key) not in (None, 0):
            return f"{key} {answer[key]}"
    return None
