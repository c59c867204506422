"""Who the stub may connect to, checked before connecting (docs/ipc.md "Access control"): the
directory of a socket file (ipc://, unix://) must not be one anyone could have put it in
(``check_socket_dir``: one ``os.stat`` per connect, two when the directory belongs to another
user), and tcp:// needs CURVE keys (``curve_keys``, ``connect_dealer``)."""

from __future__ import annotations

import os
import stat

from .exceptions import BrokerUnavailable, ParameterError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: CURVE keys for tcp:// endpoints (40-char Z85 each), when not given to the Client.
ENV_CURVE_SERVERKEY = "IGNITE_BROKER_CURVE_SERVERKEY"
ENV_CURVE_PUBLICKEY = "IGNITE_BROKER_CURVE_PUBLICKEY"
ENV_CURVE_SECRETKEY = "IGNITE_BROKER_CURVE_SECRETKEY"
CURVE_KWARGS = ("curve_serverkey", "curve_publickey", "curve_secretkey")
_CURVE_ENV = dict(zip(CURVE_KWARGS, (ENV_CURVE_SERVERKEY, ENV_CURVE_PUBLICKEY,
                                     ENV_CURVE_SECRETKEY), strict=True))

_zmq: Any = None


def zmq_module() -> Any:
    """pyzmq, imported on first use (it costs ~20 ms)."""
    global _zmq
    if _zmq is None:
        import zmq

        _zmq = zmq
    return _zmq


#: How to start the broker, for errors that say nobody is there.
START_HINT = ("start it with `ignite-broker run --config /etc/ignite-broker/broker.toml` "
              "or `systemctl start ignite-broker`")


#: Default endpoints chosen by ``default_endpoint`` -> the socket files it looked at.
_TRIED: dict[str, list[str]] = {}


def default_endpoint(environ: Any = os.environ, uid: int | None = None) -> str:
    """The endpoint a stub uses when none is given: $IGNITE_BROKER; else the stream socket of
    the host's broker, the same for every process: systemd's /run/ignite-broker when its
    socket (or the directory) is there, else this user's runtime directory.  The paths looked
    at are named by the error when nobody answers."""
    from protocol.ipc import ENV_ENDPOINT
    from protocol.ipcstream import DEFAULT_STREAM_SOCKET_NAME, stub_runtime_dirs

    if environ.get(ENV_ENDPOINT):
        return str(environ[ENV_ENDPOINT])
    dirs = stub_runtime_dirs(environ, os.getuid() if uid is None else uid)
    paths = [f"{directory}/{DEFAULT_STREAM_SOCKET_NAME}" for directory in dirs]
    chosen = next((p for p in paths if os.path.exists(p)), None) \
        or next((p for p in paths if os.path.isdir(os.path.dirname(p))), paths[-1])
    endpoint = f"unix://{chosen}"
    _TRIED[endpoint] = paths
    return endpoint


def endpoint_hint(endpoint: str, *, start: bool = False) -> str:
    """Why an ipc:// or unix:// endpoint may be unreachable, when the filesystem can tell;
    with ``start``, how to start the broker when nothing tells otherwise."""
    path = socket_file(endpoint)
    if path is None:
        return f" (is ignite-broker running? {START_HINT})" if start else ""
    if not os.path.exists(path):
        tried = _TRIED.get(endpoint)
        where = (f"no socket file at {' nor '.join(tried)}; $IGNITE_BROKER chooses another"
                 if tried and len(tried) > 1 else f"no socket file at {path}")
        return f" ({where}: is ignite-broker running? {START_HINT})"
    if not os.access(path, os.W_OK):
        return (f" (no permission on {path}: is this user in the broker's group?)")
    return ""


def socket_dir_refusal(directory: str, st_uid: int, st_mode: int, my_uid: int,
                       parent_mode: Callable[[], int | None]) -> str | None:
    """Why a socket in ``directory`` (owner ``st_uid``, mode ``st_mode``) may not be the
    broker's, or None.  Refused: a directory every user may write (anyone could have put the
    socket there), and one owned by a user other than root or ourselves that sits in a
    directory every user may write (/tmp): anyone could have created it.  Another user's
    directory elsewhere (systemd's /run/ignite-broker, owned by the service user in root's
    /run) is the normal case.  ``parent_mode()`` is asked only then; None means unknown."""
    mode = stat.S_IMODE(st_mode)
    if st_mode & stat.S_IWOTH:
        return (f"{directory} (mode {mode:04o}) is writable by every user: anyone could have "
                "put the socket there")
    if st_uid in (0, my_uid):
        return None
    pmode = parent_mode()
    if pmode is None or pmode & stat.S_IWOTH:
        parent = os.path.dirname(os.path.abspath(directory)) or "/"
        return (f"{directory} belongs to uid {st_uid}, another user, and {parent} lets every "
                "user create directories: anyone could have made it (use the broker's "
                "XDG_RUNTIME_DIR or /run/ignite-broker)")
    return None


def check_socket_dir(path: str) -> bool:
    """Refuse (BrokerUnavailable, nothing sent) to connect to socket file ``path`` when its
    directory fails ``socket_dir_refusal``; False when the directory does not exist (no
    broker there yet), True when it passed."""
    directory = os.path.dirname(path) or "."
    try:
        st = os.stat(directory)
    except OSError:
        return False

    def parent_mode() -> int | None:
        try:
            return os.stat(os.path.dirname(os.path.abspath(directory)) or "/").st_mode
        except OSError:
            return None

    why = socket_dir_refusal(directory, st.st_uid, st.st_mode, os.geteuid(), parent_mode)
    if why is not None:
        raise BrokerUnavailable(f"refusing to connect to {path}: {why}", maybe_applied=False)
    return True


def socket_file(endpoint: str) -> str | None:
    """The socket file of an ipc:// or unix:// endpoint (None for tcp:// and abstract names)."""
    for scheme in ("ipc://", "unix://"):
        if endpoint.startswith(scheme) and not endpoint.startswith(scheme + "@"):
            return endpoint[len(scheme):]
    return None


def curve_keys(given: dict[str, Any] | None = None,
               environ: Any = os.environ) -> tuple[bytes, bytes, bytes] | None:
    """(server public, client public, client secret) for tcp://: Client kwargs
    ``curve_serverkey``/``curve_publickey``/``curve_secretkey``, else $IGNITE_BROKER_CURVE_*;
    None when none is set.  A secret key is never echoed."""
    given = given or {}
    values = [given.get(name) or environ.get(_CURVE_ENV[name]) for name in CURVE_KWARGS]
    if not any(values):
        return None
    keys = []
    for name, value in zip(CURVE_KWARGS, values, strict=True):
        if isinstance(value, str):
            value = value.encode("ascii", "replace")
        if not isinstance(value, bytes) or len(value) != 40:
            raise ParameterError(
                f"{name} (or ${_CURVE_ENV[name]}) must be a 40-character Z85 CURVE key "
                "(ignite-broker keygen prints a pair); all three are needed for tcp://")
        keys.append(value)
    return keys[0], keys[1], keys[2]


def new_dealer(context: Any) -> Any:
    """A DEALER of ``context`` (blocking or asyncio) with the stub's options: LINGER 0,
    IMMEDIATE (nothing is queued without a broker connection, so "not writable" means "no
    broker"), and a routing id in this process's session."""
    from .envelope import routing_id

    zmq = zmq_module()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IMMEDIATE, 1)
    sock.setsockopt(zmq.ROUTING_ID, routing_id())
    return sock


def connect_dealer(sock: Any, endpoint: str, curve: tuple[bytes, bytes, bytes] | None) -> bool:
    """Connect a DEALER to ``endpoint`` once it is safe: a socket file's directory must exist
    and pass ``check_socket_dir`` (False while it does not exist); tcp:// needs CURVE keys."""
    zmq = zmq_module()
    path = socket_file(endpoint)
    if path is not None and not check_socket_dir(path):
        return False
    if endpoint.startswith("tcp://"):
        if curve is None:
            raise ParameterError(
                f"{endpoint}: the broker serves tcp:// only to CURVE clients; set "
                f"${ENV_CURVE_SERVERKEY} (the broker's public key), ${ENV_CURVE_PUBLICKEY} and "
                f"${ENV_CURVE_SECRETKEY} (this worker's pair, its public key listed in the "
                "broker's broker.curve_client_keys), or the Client kwargs curve_serverkey, "
                "curve_publickey, curve_secretkey")
        sock.setsockopt(zmq.CURVE_SERVERKEY, curve[0])
        sock.setsockopt(zmq.CURVE_PUBLICKEY, curve[1])
        sock.setsockopt(zmq.CURVE_SECRETKEY, curve[2])
    sock.connect(endpoint)
    return True
