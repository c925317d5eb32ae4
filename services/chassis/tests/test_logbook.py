"""A producer finds that the broker lost what it acknowledged (chassis.kafka.logbook)."""

from chassis.kafka.logbook import LogBook
from chassis.kafka.producing import Landed

EVENTS = "crm.opportunity.events"


def test_sends_that_land_after_the_acknowledged_end_are_the_same_log() -> None:
    book = LogBook("e1", {(EVENTS, 0): 10})
    assert book.lost_in({(EVENTS, 0): Landed(10, 12), (EVENTS, 1): Landed(0, 3)}) == []
    book.landed({(EVENTS, 0): Landed(10, 12), (EVENTS, 1): Landed(0, 3)})
    assert book.ends == {(EVENTS, 0): 12, (EVENTS, 1): 3}


def test_a_send_that_lands_before_the_acknowledged_end_means_the_log_was_lost() -> None:
    book = LogBook("e1", {(EVENTS, 0): 10})
    [why] = book.lost_in({(EVENTS, 0): Landed(0, 1)})
    assert "landed at offset 0" in why
    assert "acknowledged up to 10" in why


def test_a_partition_ending_below_what_was_acknowledged_was_lost() -> None:
    book = LogBook("e1", {(EVENTS, 0): 10, (EVENTS, 1): 4})
    assert book.lost_at({(EVENTS, 0): 10, (EVENTS, 1): 7}) == []
    [why] = book.lost_at({(EVENTS, 0): 0, (EVENTS, 1): 4})
    assert why.startswith(f"{EVENTS}/0")
    assert "ends at 0" in why


def test_a_topic_gone_from_the_broker_was_lost() -> None:
    book = LogBook("e1", {(EVENTS, 2): 5})
    [why] = book.lost_at({(EVENTS, 2): None})
    assert "gone" in why


def test_a_relay_that_never_published_has_nothing_to_lose() -> None:
    assert LogBook("e1").lost_at({}) == []
