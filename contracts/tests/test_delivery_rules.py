"""The rules file's `delivery` section: defaults, which channels a reminder goes to, and
refusals that name the key and never quote a secret or a URL."""

from datetime import timedelta

import pytest
import yaml

from contracts.delivery import Audience, Delivery
from contracts.rules import DEFAULT_RULES_FILE, RulebookError, load_rulebook, parse_rulebook

SECRET = "s3cr3t-never-shown"
TOKEN = "tok-never-shown"


def _with_delivery(delivery: dict[str, object]) -> str:
    data = yaml.safe_load(DEFAULT_RULES_FILE.read_text(encoding="utf-8"))
    data["delivery"] = delivery
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def _refusal(delivery: dict[str, object]) -> str:
    with pytest.raises(RulebookError) as caught:
        parse_rulebook(_with_delivery(delivery))
    message = str(caught.value)
    assert SECRET not in message
    assert TOKEN not in message
    return message


def test_the_shipped_rules_deliver_nowhere_with_six_attempts_from_one_second() -> None:
    delivery = load_rulebook().delivery
    assert delivery.channels == ()
    assert delivery.attempts == 6
    assert delivery.first_backoff == timedelta(seconds=1)
    assert delivery.timeout == timedelta(seconds=5)


def test_durations_parse_as_the_rest_of_the_rules_file() -> None:
    rules = parse_rulebook(
        _with_delivery({"attempts": 3, "first_backoff": "PT0.5S", "timeout": "2s"})
    )
    assert rules.delivery.first_backoff == timedelta(milliseconds=500)
    assert rules.delivery.timeout == timedelta(seconds=2)


@pytest.mark.parametrize("kind", ["webhook", "dingtalk", "feishu"])
def test_a_signed_channel_without_secret_is_refused_at_its_secret(kind: str) -> None:
    message = _refusal(
        {"channels": [{"id": "east", "kind": kind, "url": f"https://x.example/h?t={TOKEN}"}]}
    )
    assert "delivery.channels.0.secret (line" in message
    assert f"required for a {kind} channel" in message


def test_a_wecom_channel_needs_no_secret() -> None:
    rules = parse_rulebook(
        _with_delivery({"channels": [{"id": "east", "kind": "wecom", "url": "https://q.example/"}]})
    )
    assert rules.delivery.channels[0].secret is None


def test_repeated_channel_ids_are_refused() -> None:
    channel = {"id": "east", "kind": "webhook", "url": "https://x.example/", "secret": SECRET}
    message = _refusal({"channels": [channel, channel]})
    assert "delivery.channels (line" in message
    assert "channel ids repeat: ['east']" in message


@pytest.mark.parametrize("url", [f"ftp://x.example/?t={TOKEN}", f"x.example/{TOKEN}", "https://"])
def test_a_url_that_is_not_http_is_refused_without_quoting_it(url: str) -> None:
    message = _refusal({"channels": [{"id": "e", "kind": "webhook", "url": url, "secret": SECRET}]})
    assert "delivery.channels.0.url (line" in message
    assert "http:// or https://" in message


def test_unknown_kind_and_audience_are_refused_at_their_keys() -> None:
    message = _refusal(
        {"channels": [{"id": "e", "kind": "sms", "url": "https://x.example/", "to": "ceo"}]}
    )
    assert "delivery.channels.0.kind (line" in message
    assert "delivery.channels.0.to (line" in message


def test_no_attempt_and_zero_backoff_are_refused() -> None:
    message = _refusal({"attempts": 0, "first_backoff": "0s"})
    assert "delivery.attempts (line" in message
    assert "delivery.first_backoff (line" in message


def test_the_secret_is_not_in_the_channel_repr() -> None:
    delivery = Delivery.model_validate(
        {
            "channels": [
                {"id": "e", "kind": "webhook", "url": "https://x.example/", "secret": SECRET}
            ]
        }
    )
    assert SECRET not in repr(delivery)


def _delivery(*channels: dict[str, object]) -> Delivery:
    return Delivery.model_validate({"channels": list(channels)})


def test_a_channel_without_match_or_kinds_takes_every_team_and_kind() -> None:
    delivery = _delivery({"id": "all", "kind": "wecom", "url": "https://q.example/"})
    assert delivery.channels_for("follow_up", "east", "KA") == ("all",)
    assert delivery.channels_for("pause_ended", None, "SMB") == ("all",)


def test_match_narrows_by_team_and_tier_and_kinds_by_kind() -> None:
    delivery = _delivery(
        {"id": "east", "kind": "wecom", "url": "https://q.example/", "match": {"team_id": "east"}},
        {
            "id": "ka-reclaims",
            "kind": "wecom",
            "url": "https://q.example/",
            "match": {"tier": "KA"},
            "kinds": ["reclaim_due"],
        },
    )
    assert delivery.channels_for("follow_up", "east", "SMB") == ("east",)
    assert delivery.channels_for("follow_up", "west", "KA") == ()
    assert delivery.channels_for("reclaim_due", "west", "KA") == ("ka-reclaims",)
    assert delivery.channels_for("reclaim_due", "east", "KA") == ("east", "ka-reclaims")
    assert delivery.channels_for("reclaim_due", "east", "SMB") == ("east",)


def test_a_manager_channel_of_the_team_takes_its_escalations_only() -> None:
    delivery = _delivery(
        {"id": "reps", "kind": "wecom", "url": "https://q.example/", "match": {"team_id": "east"}},
        {
            "id": "boss",
            "kind": "wecom",
            "url": "https://q.example/",
            "to": "manager",
            "match": {"team_id": "east"},
        },
    )
    assert delivery.channels[1].to is Audience.MANAGER
    assert delivery.channels_for("escalation", "east", "KA") == ("reps", "boss")
    assert delivery.channels_for("follow_up", "east", "KA") == ("reps",)
    assert delivery.channels_for("escalation", "west", "KA") == ()


def test_a_manager_channel_may_name_more_kinds() -> None:
    delivery = _delivery(
        {
            "id": "boss",
            "kind": "wecom",
            "url": "https://q.example/",
            "to": "manager",
            "kinds": ["escalation", "reclaim_due"],
        }
    )
    assert delivery.channels_for("reclaim_due", "east", "KA") == ("boss",)
    assert delivery.channels_for("follow_up", "east", "KA") == ()
