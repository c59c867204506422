"""TLS with client certificates and authentication between the broker and real nodes, including
the clear errors a worker gets when the broker's CA or password is wrong, and no secret in logs."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from broker.devcluster.brokerproc import BrokerProcess
from libclient import Client
from libclient.exceptions import ClusterUnavailable

pytestmark = pytest.mark.integration


def _tls(files, *, ca=None, encrypted_key=False) -> dict:
    settings = {
        "tls.enabled": True,
        "tls.ca_file": str(ca or files.ca),
        "tls.cert_file": str(files.client_cert),
        "tls.key_file": str(files.client_key_encrypted if encrypted_key else files.client_key),
    }
    if encrypted_key:
        settings["tls.key_password"] = files.client_key_password
    return settings


def _roundtrip(endpoint: str) -> None:
    with Client(broker=endpoint) as client:
        client.connect()
        cache = client.get_or_create_cache(f"secure-{uuid.uuid4().hex[:6]}")
        cache.put("k", "secret value")
        assert cache.get("k") == "secret value"


def _unavailable_message(endpoint: str) -> str:
    with Client(broker=endpoint) as client:
        client.connect()
        with pytest.raises(ClusterUnavailable) as err:
            client.get_cache("any").get(1)
    return str(err.value)


@pytest.mark.parametrize("encrypted_key", [False, True])
def test_tls_with_client_certificate(ignite_ssl, tmp_path, encrypted_key):
    files = ignite_ssl.ssl_files
    settings = _tls(files, encrypted_key=encrypted_key)
    with BrokerProcess(ignite_ssl.addresses, workdir=tmp_path, settings=settings) as broker:
        broker.start()
        _roundtrip(broker.endpoint)
    assert files.client_key_password not in broker.log()


def test_wrong_ca_gives_a_clear_error(ignite_ssl, tmp_path):
    other_ca = tmp_path / "other-ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(tmp_path / "other-ca.key"), "-out", str(other_ca), "-subj", "/CN=other"],
        check=True, capture_output=True)
    settings = {**_tls(ignite_ssl.ssl_files, ca=other_ca), "cluster.connect_timeout": 2.0,
                "limits.queue_wait": 1.0}
    with BrokerProcess(ignite_ssl.addresses, workdir=tmp_path, settings=settings) as broker:
        broker.start(wait_nodes=0)
        message = _unavailable_message(broker.endpoint)
    assert "CERTIFICATE_VERIFY_FAILED" in message or "certificate verify failed" in message
    assert "node_connect_failed" in broker.log()


def test_plain_broker_against_tls_node_fails_clearly(ignite_ssl, tmp_path):
    settings = {"cluster.connect_timeout": 2.0,
                "limits.queue_wait": 1.0}
    with BrokerProcess(ignite_ssl.addresses, workdir=tmp_path, settings=settings) as broker:
        broker.start(wait_nodes=0)
        message = _unavailable_message(broker.endpoint)
    assert "no Ignite node became reachable" in message


def test_authentication(ignite_auth, tmp_path):
    settings = {"cluster.username": "ignite", "cluster.password": "ignite"}
    with BrokerProcess(ignite_auth.addresses, workdir=tmp_path, settings=settings) as broker:
        broker.start()
        _roundtrip(broker.endpoint)
        shown = broker.admin("show config")
        assert shown["cluster.password"] == "***" and shown["cluster.username"] == "ignite"


def test_wrong_password_gives_a_clear_error_and_is_never_logged(ignite_auth, tmp_path):
    secret = "wrong-s3cret-" + uuid.uuid4().hex[:6]
    password_file = tmp_path / "password"
    password_file.write_text(secret + "\n")
    settings = {"cluster.username": "ignite", "cluster.password_file": str(password_file),
                "cluster.connect_timeout": 2.0,
                "limits.queue_wait": 1.0}
    with BrokerProcess(ignite_auth.addresses, workdir=tmp_path, settings=settings) as broker:
        broker.start(wait_nodes=0)
        message = _unavailable_message(broker.endpoint)
    assert "authentication failed" in message
    assert secret not in broker.log()
    assert secret not in message
