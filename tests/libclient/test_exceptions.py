"""Exceptions: pyignite's names with pyignite's parents, plus the broker's own, and the one
table that maps an IPC reply status to an exception."""

from __future__ import annotations

import inspect

import pyignite.exceptions as pye
import pytest

import libclient.exceptions as lce
from protocol import ipc

PYIGNITE_NAMES = [n for n, o in vars(pye).items()
                  if inspect.isclass(o) and issubclass(o, BaseException)
                  and o.__module__ == "pyignite.exceptions"]


def test_all_pyignite_exceptions_exist():
    assert sorted(PYIGNITE_NAMES) == sorted(n for n in PYIGNITE_NAMES if hasattr(lce, n))
    assert lce.connection_errors == pye.connection_errors


@pytest.mark.parametrize("name", PYIGNITE_NAMES)
def test_pyignite_parents_are_kept(name):
    theirs, ours = getattr(pye, name), getattr(lce, name)
    for other in PYIGNITE_NAMES:
        assert issubclass(ours, getattr(lce, other)) == issubclass(theirs, getattr(pye, other))
    for builtin in (OSError, Exception):
        assert issubclass(ours, builtin) == issubclass(theirs, builtin)
    assert issubclass(ours, lce.LibclientError)


def test_broker_errors():
    assert issubclass(lce.BrokerUnavailable, lce.ReconnectError)
    assert issubclass(lce.ClusterUnavailable, lce.ReconnectError)
    assert issubclass(lce.BrokerTimeout, TimeoutError)
    assert issubclass(lce.NodeMismatchError, lce.ParameterError)
    assert issubclass(lce.NodeMismatchError, lce.ReconnectError)
    assert lce.BrokerUnavailable("x", maybe_applied=True).maybe_applied is True


@pytest.mark.parametrize("status, cls", [
    (ipc.Status.BAD_REQUEST, lce.ParameterError),
    (ipc.Status.UNKNOWN_OP, lce.NotSupportedError),
    (ipc.Status.UNSUPPORTED_VERSION, lce.BrokerProtocolError),
    (ipc.Status.OVERLOADED, lce.BrokerOverloaded),
    (ipc.Status.CLUSTER_UNAVAILABLE, lce.ClusterUnavailable),
    (ipc.Status.DEADLINE_EXCEEDED, lce.BrokerTimeout),
    (ipc.Status.INTERNAL, lce.BrokerError),
    (ipc.Status.TOO_LARGE, lce.RequestTooLarge),
    (99, lce.BrokerError),
])
def test_status_table(status, cls):
    payload = ipc.error_payload("k", "the message", maybe_applied=True)
    exc = lce.error_from_reply(int(status), payload, lce.CacheError, "cache_put")
    assert type(exc) is cls
    assert "the message" in str(exc)
    if isinstance(exc, lce.BrokerError):
        assert exc.maybe_applied is True


@pytest.mark.parametrize("cls", [lce.CacheError, lce.SQLError, lce.ClusterError,
                                 lce.CacheCreationError, lce.BinaryTypeError])
def test_server_errors_take_the_operations_class_and_keep_the_node_text(cls):
    payload = ipc.error_payload("server_error", "Cache does not exist [cacheId=1]",
                                server_status=1000)
    exc = lce.error_from_reply(ipc.Status.SERVER_ERROR, payload, cls, "cache_get")
    assert type(exc) is cls and str(exc) == "Cache does not exist [cacheId=1]"
    assert exc.server_status == 1000


def test_unknown_op_names_the_op():
    exc = lce.error_from_reply(2, ipc.error_payload("unknown_op", "unknown op 'scan'"),
                               lce.CacheError, "scan")
    assert "does not implement 'scan'" in str(exc)


def test_a_handle_that_ended_with_an_earlier_broker_run_is_a_broker_unavailable():
    payload = ipc.error_payload("ended_with_broker", "transaction 5 was opened on an earlier "
                                "run of the broker", maybe_applied=False)
    exc = lce.error_from_reply(ipc.Status.CLUSTER_UNAVAILABLE, payload, lce.CacheError,
                               "cache_put")
    assert type(exc) is lce.BrokerUnavailable and exc.maybe_applied is False
    assert "earlier run of the broker" in str(exc)
