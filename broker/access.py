"""Who may reach the broker: its socket and lock directories, the peer credentials of local
workers (SO_PEERCRED on unix://, ZAP on ipc://), CURVE keys on tcp://, and the permissions of
files holding secrets.

The rules, each a pure function tested without sockets:

- ``socket_dir_problem``: a directory holding the broker's sockets or lock file must belong to
  the broker's uid (or root) and be writable by nobody else; otherwise whoever can write it can
  block start-up or replace the socket a worker connects to.
- ``secret_file_problem``: a file holding a secret (password, CURVE secret key) readable by
  group or others is warned about; one anybody may write is refused.
- ``PeerPolicy.allows``: with ``broker.allow_uids``/``broker.allow_gids`` set, a local peer is
  served when its uid is listed, its gid is listed, or its user is a member of a listed group
  (group database); root and the broker's own uid always are.  Empty lists: the file modes
  decide, as before.
- ZAP (``ZapHandler``, our own REP socket on ``inproc://zeromq.zap.01``, driven from the event
  loop like the ROUTER): domain ``ipc`` applies ``PeerPolicy`` to the ``localhost:uid:gid:pid``
  address libzmq reports; domain ``tcp`` admits a CURVE client whose public key is listed.
  pyzmq's ``AsyncioAuthenticator`` also runs on uvloop, but its allow/deny lists compare
  addresses exactly, which fits neither rule.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
import stat
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import zmq
from zmq.utils import z85

from . import log
from .errors import ConfigError

if TYPE_CHECKING:
    from .config import Config

_log = log.get("access")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN_IPC = b"ipc"
ZAP_DOMAIN_TCP = b"tcp"
#: A Z85 CURVE key is 40 characters (32 bytes).
Z85_KEY_LENGTH = 40

_WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH
_READABLE_BY_OTHERS = stat.S_IRGRP | stat.S_IROTH


# -- directories --------------------------------------------------------------------------------

def _user(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def socket_dir_problem(directory: str, st_uid: int, st_mode: int, broker_uid: int,
                       what: str = "socket directory") -> str | None:
    """Why ``directory`` (its owner and mode given) must not hold the broker's sockets, or
    None.  The broker creates it 0750; an owner other than itself (or root), or write access
    for group or others, lets someone else squat or replace the sockets."""
    if not stat.S_ISDIR(st_mode):
        return f"{directory} is not a directory"
    mode = f"mode {stat.S_IMODE(st_mode):04o}"
    if st_uid not in (broker_uid, 0):
        return (f"the {what} {directory} belongs to {_user(st_uid)}, not to the "
                f"broker's {_user(broker_uid)} ({mode}): that user could replace the broker's "
                "sockets; remove it, or configure a directory of the broker's own")
    if st_mode & _WRITABLE_BY_OTHERS:
        return (f"the {what} {directory} ({_user(st_uid)}, {mode}) is writable by "
                "group or others, who could replace the broker's sockets; "
                f"chmod go-w {directory}")
    return None


def ensure_socket_dir(directory: str, what: str = "socket directory") -> None:
    """Create ``directory`` (0750) if needed, then refuse it unless it is the broker's own and
    writable by nobody else (ConfigError naming its owner and mode)."""
    directory = directory or "."
    try:
        os.makedirs(directory, mode=0o750, exist_ok=True)
        st = os.lstat(directory)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the {what} {directory}: {exc.strerror}") from exc
    if stat.S_ISLNK(st.st_mode):
        # Whoever owns the link can re-point it: the link is held to the owner rule too.
        if st.st_uid not in (os.geteuid(), 0):
            raise ConfigError(f"the {what} {directory} is a symbolic link owned by "
                              f"{_user(st.st_uid)}, who could re-point it; remove it")
        st = os.stat(directory)
    problem = socket_dir_problem(directory, st.st_uid, st.st_mode, os.geteuid(), what)
    if problem is not None:
        raise ConfigError(problem)


def check_existing_socket_dir(directory: str) -> None:
    """check-config: the same rule for a directory that exists already (the broker would
    create a missing one)."""
    try:
        st = os.stat(directory or ".")
    except OSError:
        return
    problem = socket_dir_problem(directory, st.st_uid, st.st_mode, os.geteuid())
    if problem is not None:
        raise ConfigError(problem)


# -- files holding secrets ----------------------------------------------------------------------

def secret_file_problem(path: str, st_mode: int) -> tuple[str, str] | None:
    """("refuse" | "warn", why) for a file holding a secret, or None when only its owner
    (and root) can read it."""
    mode = stat.S_IMODE(st_mode)
    if st_mode & stat.S_IWOTH:
        return ("refuse", f"{path} (mode {mode:04o}) is writable by every user, who could "
                          f"swap the secret; chmod 600 {path}")
    if st_mode & _READABLE_BY_OTHERS:
        return ("warn", f"{path} (mode {mode:04o}) is readable by group or others; "
                        f"chmod 600 {path} unless that is intended")
    return None


def check_secret_file(setting: str, path: str) -> list[str]:
    """Warnings about the secret file of ``setting``; ConfigError when it must be refused."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc.strerror}") from exc
    verdict = secret_file_problem(path, st.st_mode)
    if verdict is None:
        return []
    kind, why = verdict
    if kind == "refuse":
        raise ConfigError(f"{setting}: {why}")
    return [f"{setting}: {why}"]


# -- CURVE keys ---------------------------------------------------------------------------------

def is_z85_key(text: str) -> bool:
    if len(text) != Z85_KEY_LENGTH:
        return False
    try:
        z85.decode(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError, KeyError, struct.error):
        return False
    return True


def _key_from_text(text: str, label: str, secret: bool) -> bytes:
    text = text.strip()
    if not is_z85_key(text):
        shown = "(not shown)" if secret else repr(text[:60])
        raise ConfigError(f"{label}: a CURVE key is {Z85_KEY_LENGTH} characters of Z85 "
                          f"(ignite-broker keygen prints one), got {shown}")
    return text.encode("ascii")


def _key_lines(text: str) -> list[tuple[int, str]]:
    """(line number, first word) of the lines of a key file that are neither blank nor
    comments (``#``: Z85 uses it, but never as a key's first character, since 85**4 * 84
    exceeds 2**32); anything after the key on its line is free text."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if words and not words[0].startswith("#"):
            out.append((number, words[0]))
    return out


def _cert_value(text: str, name: str) -> str | None:
    """``name = "value"`` from a ZeroMQ certificate file (zmq.auth.create_certificates)."""
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.strip() == name:
            return value.strip().strip('"')
    return None


def load_server_secret(path: str) -> bytes:
    """The broker's CURVE secret key (Z85) from ``path``: the key alone on a line, or a ZeroMQ
    certificate file with ``secret-key = "..."``.  Never echoed."""
    label = f"broker.curve_secret_key_file {path}"
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"{label}: {exc.strerror}") from exc
    value = _cert_value(text, "secret-key")
    if value is None:
        lines = _key_lines(text)
        value = lines[0][1] if len(lines) == 1 else ""
    return _key_from_text(value, label, secret=True)


def load_client_keys(keys: Iterable[str], source: str) -> frozenset[bytes]:
    """The allowed client public keys (Z85): ``keys`` plus those in ``source``, a file with one
    key per line (first word; ``#`` comment lines) or a directory of ZeroMQ public
    certificates (``*.key``)."""
    allowed = {_key_from_text(k, "broker.curve_client_keys", secret=False) for k in keys}
    if source:
        label = f"broker.curve_client_keys_file {source}"
        try:
            if os.path.isdir(source):
                for name in sorted(os.listdir(source)):
                    if name.endswith(".key"):
                        with open(os.path.join(source, name), encoding="ascii",
                                  errors="replace") as fh:
                            value = _cert_value(fh.read(), "public-key")
                        if value is not None:
                            allowed.add(_key_from_text(value, f"{label}/{name}", secret=False))
            else:
                with open(source, encoding="ascii", errors="replace") as fh:
                    for number, word in _key_lines(fh.read()):
                        allowed.add(_key_from_text(word, f"{label}:{number}", secret=False))
        except OSError as exc:
            raise ConfigError(f"{label}: {exc.strerror}") from exc
    return frozenset(allowed)


def keygen() -> tuple[str, str]:
    """A new CURVE keypair (public, secret), Z85."""
    public, secret = zmq.curve_keypair()
    return public.decode("ascii"), secret.decode("ascii")


# -- local peers --------------------------------------------------------------------------------

def _groups_of(uid: int) -> frozenset[int]:
    """The uid's groups in the group database (primary and supplementary)."""
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return frozenset()
    return frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))


@dataclass
class PeerPolicy:
    """The optional allow-list of local peers (unix://, ipc://)."""

    allow_uids: frozenset[int] = frozenset()
    allow_gids: frozenset[int] = frozenset()
    broker_uid: int = field(default_factory=os.geteuid)
    groups_of: Callable[[int], frozenset[int]] = _groups_of
    _groups: dict[int, frozenset[int]] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.allow_uids or self.allow_gids)

    def allows(self, uid: int, gid: int) -> bool:
        if not self.active or uid in (0, self.broker_uid) or uid in self.allow_uids:
            return True
        if gid in self.allow_gids:
            return True
        if not self.allow_gids:
            return False
        groups = self._groups.get(uid)
        if groups is None:  # a blocking NSS lookup, once per uid
            groups = self._groups[uid] = self.groups_of(uid)
        return not groups.isdisjoint(self.allow_gids)


def parse_zap_peer(address: bytes) -> tuple[int, int, int] | None:
    """(pid, uid, gid) from an ipc ZAP address ``localhost:<uid>:<gid>:<pid>``, else None."""
    parts = address.split(b":")
    if len(parts) != 4 or not all(p.isdigit() for p in parts[1:]):
        return None
    return int(parts[3]), int(parts[1]), int(parts[2])


def peer_credentials(transport: asyncio.BaseTransport) -> tuple[int, int, int] | None:
    """(pid, uid, gid) of a Unix stream peer (SO_PEERCRED), or None if unavailable."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    try:
        data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                               struct.calcsize("3i"))
    except OSError:
        return None
    pid, uid, gid = struct.unpack("3i", data)
    return pid, uid, gid


class Refusals:
    """The refused peers of one transport: all counted, logged through the project's
    ``log.Throttle`` (a few lines per interval, the rest counted on the next line)."""

    def __init__(self, throttle: log.Throttle | None = None) -> None:
        self._throttle = throttle or log.Throttle()
        self.count = 0

    def refused_peer(self, **fields: Any) -> bool:
        """Count a refusal; True when its line was logged."""
        self.count += 1
        held = self._throttle.allow()
        if held is None:
            return False
        _log.warning("peer_refused", **fields, suppressed=held)
        return True


# -- ZAP ----------------------------------------------------------------------------------------

class ZapHandler:
    """The ZAP handler of the broker's zmq Context, answered on the event loop.  libzmq asks
    it during every handshake of a socket with a ZAP domain (``ipc`` when an allow-list is
    set) and of every CURVE server (``tcp``)."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], access: Access) -> None:
        self._context = context
        self._access = access
        self._sock: zmq.Socket[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        sock = self._sock = self._context.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(ZAP_ENDPOINT)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._on_readable)
        self._loop.call_soon(self._on_readable)

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        while True:  # until EAGAIN: the fd is edge-triggered and a send may consume the edge
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                reply = self._access.zap_reply(frames)
            except Exception:  # a REP socket must answer, or every later handshake stalls
                _log.exception("zap_failed")
                reply = [b"1.0", frames[1] if len(frames) > 1 else b"", b"500",
                         b"internal error", b"", b""]
            sock.send_multipart(reply)

    def close(self) -> None:
        if self._sock is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close(linger=0)
        self._sock = None


# -- the broker's access settings, wired --------------------------------------------------------

class Access:
    """The access rules of one broker: built from the config, applied by the front end."""

    def __init__(self, policy: PeerPolicy, *, curve_secret: bytes | None = None,
                 client_keys: frozenset[bytes] = frozenset()) -> None:
        self.policy = policy
        self.curve_secret = curve_secret
        self.client_keys = client_keys  # Z85
        self._client_keys_raw = frozenset(z85.decode(k) for k in client_keys)
        # one rate limit per transport: a flood on one does not hide refusals on another
        self.refusals = {name: Refusals() for name in ("unix", "ipc", "tcp")}
        self.zap: ZapHandler | None = None

    @classmethod
    def from_config(cls, cfg: Config) -> Access:
        policy = PeerPolicy(frozenset(cfg.broker_allow_uids), frozenset(cfg.broker_allow_gids))
        if not any(e.startswith("tcp://") for e in cfg.broker_endpoints):
            return cls(policy)
        return cls(policy, curve_secret=load_server_secret(cfg.broker_curve_secret_key_file),
                   client_keys=load_client_keys(cfg.broker_curve_client_keys,
                                                cfg.broker_curve_client_keys_file))

    def set_client_keys(self, keys: frozenset[bytes]) -> None:
        self.client_keys = keys
        self._client_keys_raw = frozenset(z85.decode(k) for k in keys)

    def reload(self, cfg: Config) -> None:
        """SIGHUP: re-read the allowed client keys; on any error keep the old ones."""
        if self.curve_secret is None:
            return
        try:
            keys = load_client_keys(cfg.broker_curve_client_keys,
                                    cfg.broker_curve_client_keys_file)
        except ConfigError as exc:
            _log.error("curve_client_keys_not_reloaded", reason=str(exc))
            return
        if keys != self.client_keys:
            self.set_client_keys(keys)
            _log.info("curve_client_keys_reloaded", keys=len(keys))

    # ZeroMQ

    def needs_zap(self) -> bool:
        return self.curve_secret is not None or self.policy.active

    def start(self, context: zmq.Context[zmq.Socket[bytes]]) -> None:
        """Bind the ZAP handler (before any endpoint: a CURVE server without a handler would
        admit any client key)."""
        if self.needs_zap():
            self.zap = ZapHandler(context, self)
            self.zap.start()

    def close(self) -> None:
        if self.zap is not None:
            self.zap.close()
            self.zap = None

    def prepare_bind(self, sock: zmq.Socket[bytes], endpoint: str) -> None:
        """Set the security options for the next bind of ``sock`` (libzmq copies them into
        each listener at bind time, so ipc:// and tcp:// of one ROUTER differ).  Local
        endpoints must be bound first: libzmq cannot reset a ZAP domain to none."""
        if endpoint.startswith("tcp://"):
            if self.curve_secret is None:  # config validation makes this unreachable
                raise ConfigError(f"{endpoint} needs CURVE: set broker.curve_secret_key_file")
            sock.setsockopt(zmq.CURVE_SERVER, 1)
            sock.setsockopt(zmq.CURVE_SECRETKEY, self.curve_secret)
            sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN_TCP)
            return
        if sock.getsockopt(zmq.CURVE_SERVER):
            raise RuntimeError(f"bind {endpoint} before any tcp:// endpoint")
        if self.policy.active:
            sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN_IPC)

    def zap_reply(self, frames: list[bytes]) -> list[bytes]:
        """Answer one ZAP request: version, request id, domain, address, identity, mechanism,
        credentials..."""
        if len(frames) < 6 or frames[0] != b"1.0":
            request_id = frames[1] if len(frames) > 1 else b""
            return [b"1.0", request_id, b"500", b"malformed ZAP request", b"", b""]
        request_id, domain, address, mechanism = frames[1], frames[2], frames[3], frames[5]
        if mechanism == b"CURVE" and domain == ZAP_DOMAIN_TCP and len(frames) >= 7:
            key = frames[6]
            if key in self._client_keys_raw:
                return [b"1.0", request_id, b"200", b"OK", z85.encode(key), b""]
            self.refusals["tcp"].refused_peer(
                transport="tcp", address=address.decode(errors="replace"),
                reason="CURVE public key not in broker.curve_client_keys",
                key=z85.encode(key).decode())
            return [b"1.0", request_id, b"400", b"unknown CURVE key", b"", b""]
        if mechanism == b"NULL" and domain == ZAP_DOMAIN_IPC:
            peer = parse_zap_peer(address)
            if peer is not None and self.policy.allows(peer[1], peer[2]):
                return [b"1.0", request_id, b"200", b"OK", f"uid:{peer[1]}".encode(), b""]
            pid, uid, gid = peer or (None, None, None)
            self.refusals["ipc"].refused_peer(transport="ipc", pid=pid, uid=uid, gid=gid,
                                              reason="peer not in broker.allow_uids/allow_gids")
            return [b"1.0", request_id, b"400", b"peer not allowed", b"", b""]
        transport = "tcp" if domain == ZAP_DOMAIN_TCP else "ipc"
        self.refusals[transport].refused_peer(
            transport=transport, address=address.decode(errors="replace"),
            reason=f"mechanism {mechanism.decode(errors='replace')}")
        return [b"1.0", request_id, b"400", b"mechanism not allowed", b"", b""]

    # Unix stream

    def admit_stream(self, transport: asyncio.BaseTransport) -> bool:
        """Whether the peer of a new unix:// connection may be served (SO_PEERCRED)."""
        if not self.policy.active:
            return True
        creds = peer_credentials(transport)
        if creds is not None and self.policy.allows(creds[1], creds[2]):
            return True
        pid, uid, gid = creds or (None, None, None)
        self.refusals["unix"].refused_peer(transport="unix", pid=pid, uid=uid, gid=gid,
                                           reason="peer not in broker.allow_uids/allow_gids")
        return False


def secret_file_warnings(cfg: Config) -> list[str]:
    """Warnings about the files holding secrets; ConfigError for a world-writable one."""
    warnings: list[str] = []
    if cfg.cluster_password_file:
        warnings += check_secret_file("cluster.password_file", cfg.cluster_password_file)
    if cfg.broker_curve_secret_key_file:
        warnings += check_secret_file("broker.curve_secret_key_file",
                                      cfg.broker_curve_secret_key_file)
    return warnings


def check_config_files(cfg: Config) -> list[str]:
    """What check-config verifies beyond the settings' types: the secret files (warnings
    returned, world-writable ones refused), the CURVE keys, and the socket directories that
    exist already."""
    warnings = secret_file_warnings(cfg)
    Access.from_config(cfg)  # loads and validates the keys
    for directory in socket_dirs(cfg):
        check_existing_socket_dir(directory)
    return warnings


def socket_dirs(cfg: Config) -> list[str]:
    """The directories of every ipc:// and unix:// socket file and of the lock file
    (abstract ipc://@names have none)."""
    paths = []
    for endpoint in [*cfg.broker_endpoints, cfg.broker_admin_endpoint]:
        for scheme in ("ipc://", "unix://"):
            if endpoint.startswith(scheme) and not endpoint.startswith(scheme + "@"):
                paths.append(endpoint[len(scheme):])
    if cfg.broker_lock_file:
        paths.append(cfg.broker_lock_file)
    return list(dict.fromkeys(os.path.dirname(p) or "." for p in paths))
