"""libclient/continuous.py without a broker: how a subscription reads pushed EVENT messages
(its own, an earlier subscription's, a ping's reply, GOING_AWAY) and checks its arguments."""

from __future__ import annotations

import pytest

from libclient.continuous import (
    CacheEntryEvent,
    EventsMissed,
    EventType,
    JavaFilter,
    ScanQuery,
    SubscriptionEnded,
    _events,
    _Inbox,
    _Reconnect,
    scan_args,
    subscribe_args,
)
from protocol.ipc import Status, error_payload, pack_reply


def _inbox(handle: int = 7) -> _Inbox:
    inbox = _Inbox()
    inbox.handle = handle
    return inbox


def test_events_missed_and_ended_are_told_apart() -> None:
    inbox = _inbox()
    inbox.take(pack_reply(0, Status.EVENT, {"sub": 7, "events": [["k", None, 1, 0]]}))
    inbox.take(pack_reply(0, Status.EVENT, {"sub": 7, "missed": "node lost"}))
    assert list(inbox.items) == [[["k", None, 1, 0]], EventsMissed("node lost")]
    assert inbox.ended is None
    inbox.take(pack_reply(0, Status.EVENT, {"sub": 7, "ended": error_payload(
        "slow_subscriber", "too slow")}))
    assert isinstance(inbox.ended, SubscriptionEnded) and "too slow" in str(inbox.ended)


def test_other_messages_are_not_events() -> None:
    inbox = _inbox()
    inbox.take(pack_reply(0, Status.EVENT, {"sub": 6, "events": [["old", None, 1, 0]]}))
    inbox.take(pack_reply(12345, Status.OK, None))  # a ping's reply
    assert not inbox.items and inbox.ended is None
    with pytest.raises(_Reconnect):
        inbox.take(pack_reply(0, Status.GOING_AWAY, error_payload("not_processed", "bye")))


def test_rows_become_typed_events() -> None:
    assert _events([["k", 1, 2, 1], ["k", 2, None, 2]]) == [
        CacheEntryEvent("k", 1, 2, EventType.UPDATED),
        CacheEntryEvent("k", 2, None, EventType.REMOVED)]


@pytest.mark.parametrize("bad", [{"page_size": 0}, {"page_size": "1"}, {"time_interval": -1}])
def test_bad_options_fail_before_anything_is_sent(bad: dict) -> None:
    options = {"page_size": 1, "time_interval": 0, "include_expired": False, **bad}
    with pytest.raises(ValueError):
        subscribe_args("c", **options)


def test_a_remote_filter_becomes_the_filter_argument() -> None:
    args = subscribe_args("c", 1, 0, False, JavaFilter("org.example.F", {"prefix": "a"}))
    assert args["filter"] == {"class": "org.example.F", "properties": {"prefix": "a"}}
    assert subscribe_args("c", 1, 0, False, JavaFilter("F"))["filter"] == {
        "class": "F", "properties": {}}
    assert "filter" not in subscribe_args("c", 1, 0, False)
    with pytest.raises(TypeError):
        subscribe_args("c", 1, 0, False, "org.example.F")  # type: ignore[arg-type]


def test_an_initial_query_is_a_scan_of_the_same_cache() -> None:
    assert scan_args("c", ScanQuery(page_size=5, partitions=3, local=True)) == {
        "cache": "c", "page_size": 5, "partitions": 3, "local": True}
    assert scan_args("c", ScanQuery()) == {"cache": "c", "page_size": 1, "partitions": -1,
                                          "local": False}
    with pytest.raises(ValueError):
        scan_args("c", ScanQuery(page_size=0))
    with pytest.raises(TypeError):
        scan_args("c", {"page_size": 1})  # type: ignore[arg-type]
