"""Owns the dev cluster's throw-away TLS material: a CA, a server key store and a client cert.

Recipe from shared/ignite-test-cluster.md section 4: openssl makes the keys and certificates,
the server key store is a PKCS12 made by openssl, the trust store is made by keytool (Java only
trusts entries keytool marks as trusted). Both certificates carry IP:127.0.0.1 and DNS:localhost.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from broker.devcluster.errors import DevClusterError
from broker.devcluster.maven import jdk_tool

STORE_PASSWORD = "123456"
CLIENT_KEY_PASSWORD = "654321"
_SAN = "subjectAltName=IP:127.0.0.1,DNS:localhost"
_DAYS = "3650"
_COMPLETE = ".complete"


@dataclass(frozen=True)
class SslFiles:
    """Paths of the TLS files; client_* are for the broker, server_*/truststore for the nodes."""

    ca: Path
    client_cert: Path
    client_key: Path
    client_key_encrypted: Path
    client_key_password: str
    server_keystore: Path
    truststore: Path
    store_password: str

    def to_json(self) -> dict[str, str]:
        return {key: str(value) for key, value in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> SslFiles:
        passwords = {"client_key_password", "store_password"}
        paths = {k: Path(v) for k, v in data.items() if k not in passwords}
        return cls(client_key_password=data["client_key_password"],
                   store_password=data["store_password"], **paths)


def ssl_files_in(directory: Path) -> SslFiles:
    """The SslFiles layout inside directory (whether or not the files exist yet)."""
    return SslFiles(
        ca=directory / "ca.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        client_key_encrypted=directory / "client_enc.key",
        client_key_password=CLIENT_KEY_PASSWORD,
        server_keystore=directory / "server.p12",
        truststore=directory / "trust.p12",
        store_password=STORE_PASSWORD,
    )


def make_certs(directory: Path) -> SslFiles:
    """Create (once) a CA, a server key store, a trust store and client files in directory."""
    files = ssl_files_in(directory.resolve())
    if (directory / _COMPLETE).is_file():
        return files
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    _make_ca(directory)
    _make_signed(directory, "server", "serverAuth")
    _make_signed(directory, "client", "clientAuth")
    _make_stores(directory, files)
    (directory / _COMPLETE).write_text("ok\n")
    return files


def _make_ca(d: Path) -> None:
    _run(d, "openssl", "req", "-x509", "-newkey", "rsa:2048", "-sha256", "-days", _DAYS,
         "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=ignite-broker-dev-ca")


def _make_signed(d: Path, name: str, usage: str) -> None:
    """Key + CSR for name, signed by the CA with the loopback SANs and the given EKU."""
    (d / f"{name}.ext").write_text(f"{_SAN}\nextendedKeyUsage={usage}\n")
    _run(d, "openssl", "req", "-newkey", "rsa:2048", "-sha256", "-nodes",
         "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=ignite-broker-dev-{name}")
    _run(d, "openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-days", _DAYS, "-sha256", "-extfile", f"{name}.ext",
         "-out", f"{name}.pem")


def _make_stores(d: Path, files: SslFiles) -> None:
    password = files.store_password
    _run(d, "openssl", "pkey", "-in", "client.key", "-aes256",
         "-passout", f"pass:{files.client_key_password}", "-out", files.client_key_encrypted.name)
    _run(d, "openssl", "pkcs12", "-export", "-in", "server.pem", "-inkey", "server.key",
         "-certfile", "ca.pem", "-name", "server", "-out", files.server_keystore.name,
         "-passout", f"pass:{password}")
    _run(d, jdk_tool("keytool"), "-importcert", "-noprompt", "-alias", "ca", "-file", "ca.pem",
         "-keystore", files.truststore.name, "-storetype", "PKCS12", "-storepass", password)


def _run(cwd: Path, *cmd: str) -> None:
    try:
        result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise DevClusterError(f"`{cmd[0]}` not found on PATH (needed for --ssl)") from None
    if result.returncode != 0:
        raise DevClusterError(f"{' '.join(cmd[:2])} failed: {result.stderr.strip()[-500:]}")
