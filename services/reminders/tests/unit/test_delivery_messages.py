"""What a channel is sent (pure): the backoff between attempts, each vendor's payload and
signature, and how a vendor's answer is read."""

import base64
import hashlib
import hmac
import urllib.parse
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from contracts.delivery import Channel
from reminders.domain.delivery import (
    backoff,
    dingtalk_sign,
    feishu_sign,
    refusal,
    request_for,
    webhook_signature,
)
from services.reminders.tests.helpers import SHANGHAI

NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
SECRET = "SEC-demo-secret"
REMINDER = orjson.dumps(
    {
        "reminder_id": "7d1f0c2e-0000-5000-8000-000000000001",
        "kind": "escalation",
        "opportunity_id": "opp-42",
        "owner_id": "rep-1",
        "team_id": "east",
        "rule_id": "ka-default",
        "due_at": "2026-12-06T02:30:00Z",
        "fired_at": "2026-12-07T01:00:00Z",
        "detail": {"rule_id": "ka-default", "manager_id": "mgr-east"},
    }
)


def _channel(kind: str, url: str = "https://robot.example/send?access_token=tok") -> Channel:
    return Channel.model_validate(
        {"id": kind, "kind": kind, "url": url, "secret": None if kind == "wecom" else SECRET}
    )


@pytest.mark.parametrize("attempt", [1, 2, 3, 6])
@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999999])
def test_backoff_doubles_each_attempt_and_jitter_takes_at_most_half(
    attempt: int, jitter: float
) -> None:
    full = timedelta(seconds=2) * 2 ** (attempt - 1)
    wait = backoff(timedelta(seconds=2), attempt, jitter)
    assert full / 2 < wait <= full


def test_backoff_without_jitter_is_first_backoff_times_two_to_the_attempts_before() -> None:
    assert backoff(timedelta(seconds=1), 1, 0.0) == timedelta(seconds=1)
    assert backoff(timedelta(seconds=1), 4, 0.0) == timedelta(seconds=8)


def test_webhook_gets_the_reminder_bytes_signed_and_keyed_by_reminder_id() -> None:
    request = request_for(_channel("webhook", "https://crm.example/hook"), REMINDER, NOW, SHANGHAI)
    assert request.body == REMINDER
    assert request.url == "https://crm.example/hook"
    assert request.headers["Idempotency-Key"] == "7d1f0c2e-0000-5000-8000-000000000001"
    expected = hmac.new(SECRET.encode(), REMINDER, hashlib.sha256).hexdigest()
    assert request.headers["X-Oppstream-Signature"] == f"sha256={expected}"


def test_the_webhook_signature_changes_with_one_byte_of_the_body() -> None:
    assert webhook_signature(SECRET, REMINDER) != webhook_signature(SECRET, REMINDER + b" ")


def test_wecom_gets_markdown_in_chinese_naming_deal_kind_rule_and_local_due_time() -> None:
    request = request_for(_channel("wecom"), REMINDER, NOW, SHANGHAI)
    body = orjson.loads(request.body)
    assert body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    for expected in ("opp-42", "升级提醒", "ka-default", "2026-12-06 10:30", "mgr-east"):
        assert expected in content
    assert SECRET not in content


def test_dingtalk_gets_markdown_and_a_signed_url_keeping_the_access_token() -> None:
    request = request_for(_channel("dingtalk"), REMINDER, NOW, SHANGHAI)
    body = orjson.loads(request.body)
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "商机升级提醒（主管）"
    assert "opp-42" in body["markdown"]["text"]
    query = parse_qs(urlsplit(request.url).query)
    stamp = int(NOW.timestamp() * 1000)
    assert query["access_token"] == ["tok"]
    assert query["timestamp"] == [str(stamp)]
    # parse_qs decodes the sign once: it must be the base64 text itself.
    assert query["sign"] == [urllib.parse.unquote_plus(dingtalk_sign(SECRET, stamp))]
    assert SECRET not in request.url


def test_feishu_gets_text_with_timestamp_in_seconds_and_sign_in_the_body() -> None:
    request = request_for(
        _channel("feishu", "https://open.feishu.cn/hook/x"), REMINDER, NOW, SHANGHAI
    )
    body = orjson.loads(request.body)
    assert body["msg_type"] == "text"
    assert body["timestamp"] == str(int(NOW.timestamp()))
    assert body["sign"] == feishu_sign(SECRET, int(NOW.timestamp()))
    assert "opp-42" in body["content"]["text"]
    assert request.url == "https://open.feishu.cn/hook/x"


def test_dingtalk_sign_equals_the_vendors_documented_sample_code() -> None:
    """钉钉 documents the robot's sign as Python sample code, not as a fixed pair:
    https://open.dingtalk.com/document/robots/customize-robot-security-settings —
    hmac.new(secret, f"{timestamp}\\n{secret}", sha256), base64, urllib.parse.quote_plus.
    The sample, run at a fixed timestamp and secret, and the value it gives, frozen."""
    timestamp, secret = 1577262236757, "SEC0123456789abcdef"
    string_to_sign = f"{timestamp}\n{secret}".encode()
    sample = urllib.parse.quote_plus(
        base64.b64encode(hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest())
    )
    assert dingtalk_sign(secret, timestamp) == sample
    assert sample == "Pgr6tpIpjVrMPPJUPkaI9sivFPPTYOy5zIOMF2GPFMA%3D"


def test_dingtalk_hmac_base64_urlencode_chain_matches_the_published_vector() -> None:
    """The one fixed example 钉钉 publishes for its HMAC-SHA256 + base64 + urlencode chain
    (免登签名, timestamp 1546084445901, appSecret testappSecret →
    HCbG3xNE3vzhO%2Bu7qCUL1jS5hsu2n5r2cFhnTrtyDAE%3D; https://ding-doc.dingtalk.com/doc#/faquestions/hxs5v9):
    our encoding step reproduces it."""
    digest = hmac.new(b"testappSecret", b"1546084445901", hashlib.sha256).digest()
    encoded = urllib.parse.quote_plus(base64.b64encode(digest).decode())
    assert encoded == "HCbG3xNE3vzhO%2Bu7qCUL1jS5hsu2n5r2cFhnTrtyDAE%3D"
    # The robot sign is the same chain over "timestamp\nsecret": at this timestamp and secret
    # it differs only by the message signed.
    assert dingtalk_sign("testappSecret", 1546084445901) != encoded


def test_feishu_sign_equals_the_vendors_documented_sample_code() -> None:
    """飞书 documents the custom bot's sign as sample code: the KEY is f"{timestamp}\\n{secret}",
    the message is empty, base64 of the HMAC-SHA256
    (https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot, 签名校验), with
    timestamp 1599360473 in its request example. A published third-party test vector of the
    same algorithm (timestamp 1584532800, key 9RfDwbCf5MqJ54F8FUktw) is checked too."""
    key = b"1599360473\ndemo-secret"
    sample = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert feishu_sign("demo-secret", 1599360473) == sample
    assert sample == "3/MaVZ8JLIy4TUG+7KSFJqvUkTKd+HWY8g+56DZWq8s="
    assert (
        feishu_sign("9RfDwbCf5MqJ54F8FUktw", 1584532800)
        == "YftbIE5F81bUnsLwj5Av5Ahfxsa/71+f4Th4tPR7GaA="
    )


@pytest.mark.parametrize(
    ("kind", "status", "body", "expected"),
    [
        ("webhook", 204, b"", None),
        ("webhook", 500, b"", "HTTP 500"),
        ("webhook", 200, b"not json", None),
        ("wecom", 200, b'{"errcode":0,"errmsg":"ok"}', None),
        ("wecom", 200, b'{"errcode":93000,"errmsg":"invalid webhook url"}', "errcode 93000"),
        ("dingtalk", 200, b'{"errcode":310000,"errmsg":"sign not match"}', "errcode 310000"),
        ("feishu", 200, b'{"code":0,"msg":"success","data":{}}', None),
        ("feishu", 200, b'{"code":19021,"msg":"sign match fail"}', "code 19021"),
        ("feishu", 200, b'{"StatusCode":0,"StatusMessage":"success"}', None),
        ("dingtalk", 200, b"<html>", "HTTP 200 without a JSON answer"),
        ("dingtalk", 429, b'{"errcode":0}', "HTTP 429"),
    ],
)
def test_a_vendor_answering_200_with_an_error_code_is_a_failure(
    kind: str, status: int, body: bytes, expected: str | None
) -> None:
    assert refusal(_channel(kind).kind, status, body) == expected
