"""The public surface matches pyignite 0.6.1: every public method and property of Client,
AioClient, Cache, AioCache, the cursors, transactions and cluster exists with pyignite's
parameter names and defaults, and arguments are refused the way pyignite refuses them."""

from __future__ import annotations

import inspect

import pyignite
import pyignite.aio_cache
import pyignite.aio_cluster
import pyignite.cache
import pyignite.cluster
import pyignite.cursors
import pyignite.transaction
import pytest

import libclient
import libclient.aio_cache
import libclient.aio_cluster
import libclient.cache
import libclient.cluster
import libclient.cursors
import libclient.transaction
from libclient.datatypes import TransactionConcurrency, TransactionIsolation
from libclient.exceptions import ParameterError

PAIRS = [
    (pyignite.Client, libclient.Client),
    (pyignite.AioClient, libclient.AioClient),
    (pyignite.cache.Cache, libclient.cache.Cache),
    (pyignite.aio_cache.AioCache, libclient.aio_cache.AioCache),
    (pyignite.cursors.ScanCursor, libclient.cursors.ScanCursor),
    (pyignite.cursors.SqlCursor, libclient.cursors.SqlCursor),
    (pyignite.cursors.SqlFieldsCursor, libclient.cursors.SqlFieldsCursor),
    (pyignite.cursors.AioScanCursor, libclient.cursors.AioScanCursor),
    (pyignite.cursors.AioSqlFieldsCursor, libclient.cursors.AioSqlFieldsCursor),
    (pyignite.transaction.Transaction, libclient.transaction.Transaction),
    (pyignite.transaction.AioTransaction, libclient.transaction.AioTransaction),
    (pyignite.cluster.Cluster, libclient.cluster.Cluster),
    (pyignite.aio_cluster.AioCluster, libclient.aio_cluster.AioCluster),
]


def _public(cls):
    return {n for n in dir(cls) if not n.startswith("_")}


@pytest.mark.parametrize("theirs, ours", PAIRS, ids=lambda c: c.__name__)
def test_every_public_member_exists(theirs, ours):
    assert sorted(_public(theirs) - _public(ours)) == []


@pytest.mark.parametrize("theirs, ours", PAIRS, ids=lambda c: c.__name__)
def test_methods_take_pyignites_parameters(theirs, ours):
    for name in _public(theirs):
        their_attr = inspect.getattr_static(theirs, name)
        our_attr = inspect.getattr_static(ours, name)
        if isinstance(their_attr, property):
            assert isinstance(our_attr, property), name
            continue
        if not callable(their_attr) or isinstance(their_attr, type):
            continue
        their_fn = getattr(theirs, name)
        assert inspect.iscoroutinefunction(getattr(ours, name)) == (
            inspect.iscoroutinefunction(their_fn)), name
        their_params = inspect.signature(their_fn).parameters
        our_params = inspect.signature(getattr(ours, name)).parameters
        for pname, param in their_params.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            assert pname in our_params, f"{theirs.__name__}.{name} lacks {pname}"
            if param.default is not param.empty:
                assert our_params[pname].default == param.default, f"{name}({pname})"


def test_package_exports():
    assert {"Client", "AioClient", "GenericObjectMeta"} <= set(dir(libclient)) | {"AioClient"}
    assert libclient.AioClient.__name__ == "AioClient"


def test_aio_methods_take_a_timeout():
    sig = inspect.signature(libclient.AioCache.get)
    assert "timeout" in sig.parameters


# -- argument validation, compared with pyignite ------------------------------------------------


@pytest.mark.parametrize("args", [("localhost",), ("localhost", "10800"), (1, 2, 3), (5,)],
                         ids=repr)
def test_bad_connect_arguments(args):
    their_error: type = ConnectionError
    try:
        pyignite.Client().connect(*args)
    except Exception as exc:  # pyignite's error for these forms (ValueError for a bare str)
        their_error = type(exc)
    with pytest.raises(Exception) as ours:
        libclient.Client(broker="ipc:///nonexistent").connect(*args)
    assert isinstance(ours.value, ConnectionError | their_error)


@pytest.mark.parametrize("settings, message", [
    ({}, "at least cache name"), (5, "at least cache name"),
    ({0: "c", 12345: 1}, "not recognized"),
])
def test_bad_cache_settings(settings, message):
    client = libclient.Client(broker="ipc:///nonexistent")
    with pytest.raises(ParameterError, match=message):
        client.get_or_create_cache(settings)
    with pytest.raises(pyignite.exceptions.ParameterError, match=message):
        pyignite.cache.get_or_create_cache(pyignite.Client(), settings)


def test_get_cache_allows_only_a_name():
    client = libclient.Client(broker="ipc:///nonexistent")
    assert client.get_cache({0: "c"}).name == "c"
    with pytest.raises(ParameterError, match="Only cache name"):
        client.get_cache({0: "c", 1: 2})


@pytest.mark.parametrize("kwargs", [
    {"concurrency": 5}, {"isolation": 7}, {"timeout": -1}, {"timeout": 1.5}, {"label": 5},
])
def test_bad_transaction_parameters_raise_valueerror_like_pyignite(kwargs):
    with pytest.raises(ValueError):
        pyignite.transaction.Transaction(None, **kwargs)
    with pytest.raises(ValueError):
        libclient.transaction.Transaction(None, **kwargs)


def test_transaction_defaults():
    sig = inspect.signature(libclient.Client.tx_start)
    assert sig.parameters["concurrency"].default == TransactionConcurrency.PESSIMISTIC
    assert sig.parameters["isolation"].default == TransactionIsolation.REPEATABLE_READ


def test_unknown_keyword_is_a_parameter_error():
    with pytest.raises(ParameterError, match="Unexpected parameter"):
        libclient.Client(broker="ipc:///x", partition_awareness=True)


@pytest.mark.parametrize("kwargs", [
    {"use_ssl": True}, {"username": "u", "password": "p"}, {"ssl_ca_certfile": "/ca.pem"},
    {"password": "secret"},
])
def test_security_arguments_are_refused_clearly(kwargs):
    with pytest.raises(ParameterError, match="configured in the broker"):
        libclient.Client(broker="ipc:///x", **kwargs)


def test_security_arguments_asking_for_nothing_are_accepted():
    libclient.Client(broker="ipc:///x", use_ssl=False, username=None, password=None,
                     ssl_keyfile=None)


@pytest.mark.parametrize("kwargs", [{"handshake_timeout": 0}, {"handshake_timeout": -1},
                                    {"timeout": 0}, {"timeout": -2}])
def test_timeouts_must_be_positive(kwargs):
    with pytest.raises(ParameterError):
        libclient.Client(broker="ipc:///x", **kwargs)


def test_aio_client_takes_no_timeout_like_pyignite():
    with pytest.raises(ParameterError, match="timeout"):
        libclient.AioClient(broker="ipc:///x", timeout=5)


def test_not_connected_is_a_reconnect_error():
    from libclient.exceptions import ReconnectError

    with pytest.raises(ReconnectError):
        libclient.Client(broker="ipc:///x").get_cache_names()


def test_compact_footer_property_like_pyignite():
    client = libclient.Client(broker="ipc:///x")
    assert client.compact_footer is True
    client.compact_footer = False
    assert client.compact_footer is False
    with pytest.raises(Warning):
        client.compact_footer = True


def test_properties_before_connect():
    client = libclient.Client(broker="ipc:///x")
    assert client.protocol_context is None
    assert client.partition_aware is False
    assert client.partition_awareness_supported_by_protocol is False
