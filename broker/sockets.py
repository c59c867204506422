"""The broker's listening sockets (unix://, ipc://, tcp://): made here, or adopted from systemd
socket activation or from the broker this one replaces, and handed on to the next one.

Inheritance follows systemd's convention: ``LISTEN_PID`` is our pid, ``LISTEN_FDS`` sockets
start at fd 3, ``LISTEN_FDNAMES`` names them (colon-separated).  A socket is adopted for the
endpoint whose path (or TCP address) it is bound to; a name of ``unix``, ``ipc`` or ``tcp``
must agree with the endpoint's scheme.  The ZeroMQ ones are given to libzmq with ZMQ_USE_FD,
so libzmq never unlinks or re-binds the address, and a socket file is removed at exit only
when a broker made it and this one did not hand it on.  Every listener is non-blocking:
during an upgrade two processes share it, and a blocking accept would hang the one that lost
the race.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import zmq

from . import log
from .access import ensure_socket_dir
from .errors import ConfigError

_log = log.get("sockets")

SD_LISTEN_FDS_START = 3
_BACKLOG = 4096
_FAMILIES = (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6)
_LISTEN_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
#: Not systemd's: which passed sockets a broker made (colon-separated 1/0, as LISTEN_FDNAMES),
#: so that the last broker of an upgrade chain removes their files, never systemd's.
OWNED_VAR = "IGNITE_BROKER_OWNED_FDS"


@dataclass
class Listener:
    endpoint: str  # unix://, ipc:// (a path or @abstract) or tcp://
    sock: socket.socket
    made_here: bool  # a broker bound the path (so the last one removes the file at exit)


def _scheme_path(endpoint: str) -> tuple[str, str]:
    scheme, _, path = endpoint.partition("://")
    return scheme, path


def _address_key(endpoint: str) -> str:
    """What an inherited socket is matched by: the path, or tcp's "ip:port" as getsockname
    gives it (``*`` means every IPv4 address)."""
    scheme, rest = _scheme_path(endpoint)
    if scheme != "tcp":
        return "\0" + rest[1:] if rest.startswith("@") else rest  # @name: Linux's abstract
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    if host in ("*", ""):
        host = "0.0.0.0"
    with contextlib.suppress(OSError, ValueError):  # a name: the address it binds to
        host = str(socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0][4][0])
    return f"{host}:{port}"


def _resolvable(endpoint: str) -> bool:
    host = _scheme_path(endpoint)[1].rpartition(":")[0].strip("[]")
    if host in ("*", ""):
        return True
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return True


def _sockname_key(sock: socket.socket) -> str:
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return name if isinstance(name, str) else name.decode()
    return f"{name[0]}:{name[1]}"


def inherited_fds(env: MutableMapping[str, str]) -> list[tuple[int, str, bool]]:
    """(fd, name, made by a broker) of the sockets passed to this process, removing the
    variables from ``env`` (as sd_listen_fds(unset_environment=1) does, so that children do
    not inherit them)."""
    pid, count, names = (env.pop(name, None) for name in _LISTEN_VARS)
    owned = env.pop(OWNED_VAR, "").split(":")
    if not count or pid != str(os.getpid()):
        return []
    try:
        n = int(count)
    except ValueError:
        _log.warning("listen_fds_invalid", LISTEN_FDS=count)
        return []
    labels = names.split(":") if names else []
    labels += ["unknown"] * (n - len(labels))
    return [(SD_LISTEN_FDS_START + i, labels[i], i < len(owned) and owned[i] == "1")
            for i in range(n)]


class Listeners:
    """Owns every listening socket: the front end's and the admin socket."""

    def __init__(self, inherited: list[tuple[int, str, bool]] | None = None) -> None:
        self._inherited: dict[str, tuple[socket.socket, str, bool]] = {}
        for fd, name, owned in inherited or []:
            self._adopt_fd(fd, name, owned)
        self.listeners: list[Listener] = []
        self.handed_over = False

    @classmethod
    def from_environment(cls, env: MutableMapping[str, str] | None = None) -> Listeners:
        return cls(inherited_fds(os.environ if env is None else env))

    def _adopt_fd(self, fd: int, name: str, owned: bool) -> None:
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            _log.warning("inherited_fd_unusable", fd=fd, name=name, error=str(exc))
            return
        os.set_inheritable(fd, False)
        if sock.type != socket.SOCK_STREAM or sock.family not in _FAMILIES:
            _log.warning("inherited_fd_ignored", fd=fd, name=name,
                         reason="not a Unix or TCP stream socket")
            sock.close()
            return
        self._inherited[_sockname_key(sock)] = (sock, name, owned)

    def listen(self, endpoint: str, mode: int) -> socket.socket:
        """The listening socket for ``endpoint``: the inherited one bound to its path, else
        a new one (the file mode set to ``mode``)."""
        scheme, path = _scheme_path(endpoint)
        found = self._inherited.pop(_address_key(endpoint), None)
        if found is not None:
            sock, name, made_here = found
            if name in ("unix", "ipc", "tcp") and name != scheme:
                raise ConfigError(f"the inherited socket {path} is named {name!r}, "
                                  f"but the endpoint is {endpoint}")
            _log.info("listening", endpoint=endpoint, inherited_as=name)
        elif scheme == "tcp":
            sock, made_here = _listen_tcp(endpoint), False
            _log.info("listening", endpoint=endpoint)
        else:
            sock, made_here = _listen_unix(endpoint, path, mode), True
            _log.info("listening", endpoint=endpoint)
        sock.setblocking(False)
        self.listeners.append(Listener(endpoint, sock, made_here))
        return sock

    def bind_zmq(self, zsock: zmq.Socket[Any], endpoint: str, mode: int) -> None:
        """Bind a ZeroMQ socket to an ipc:// or tcp:// ``endpoint`` on our listening socket
        (ZMQ_USE_FD on a copy of its fd, which libzmq owns and closes).  A tcp:// interface
        name (tcp://eth0:port) only libzmq understands: it binds that one itself, and an
        upgrade cannot hand it over."""
        if endpoint.startswith("tcp://") and not _resolvable(endpoint):
            try:
                zsock.bind(endpoint)
            except zmq.ZMQError as exc:
                raise ConfigError(f"cannot bind {endpoint}: {exc}") from exc
            _log.info("listening", endpoint=endpoint, handed_over_in_upgrade=False)
            return
        listener = self.listen(endpoint, mode)
        zsock.setsockopt(zmq.USE_FD, os.dup(listener.fileno()))
        try:
            zsock.bind(endpoint)
        except zmq.ZMQError as exc:
            raise ConfigError(f"cannot bind {endpoint}: {exc}") from exc
        finally:
            zsock.setsockopt(zmq.USE_FD, -1)

    def unused(self) -> list[str]:
        """Close the inherited sockets no endpoint asked for; their paths."""
        paths = sorted(self._inherited)
        for path in paths:
            sock, name, _ = self._inherited.pop(path)
            _log.warning("inherited_socket_unused", path=path, name=name,
                         hint="add its endpoint to broker.endpoints")
            sock.close()
        return paths

    def handover_env(self) -> tuple[list[int], dict[str, str]]:
        """The fds to pass (in this order, from fd 3) and the LISTEN_* variables naming them
        (LISTEN_PID is for the spawner to fill in)."""
        fds = [entry.sock.fileno() for entry in self.listeners]
        names = [_scheme_path(entry.endpoint)[0] for entry in self.listeners]
        owned = ["1" if entry.made_here else "0" for entry in self.listeners]
        return fds, {"LISTEN_FDS": str(len(fds)), "LISTEN_FDNAMES": ":".join(names),
                     OWNED_VAR: ":".join(owned)}

    def remove_files(self, scheme: str) -> None:
        """Remove the ``scheme`` socket files this process made, unless handed on: new
        connections then wait for the next broker instead of reaching this one."""
        if self.handed_over:
            return
        for entry in self.listeners:
            if entry.made_here and entry.endpoint.startswith(f"{scheme}:///"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(_scheme_path(entry.endpoint)[1])

    def close(self) -> None:
        """Close every socket; remove the files this process made unless handed on."""
        for entry in self.listeners:
            entry.sock.close()
            if entry.made_here and not self.handed_over and entry.endpoint.startswith(
                    ("unix:///", "ipc:///")):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(_scheme_path(entry.endpoint)[1])
        self.listeners.clear()


def _listen_tcp(endpoint: str) -> socket.socket:
    """A listening TCP socket for ``tcp://host:port`` (a numeric address or ``*``)."""
    host, _, port = _address_key(endpoint).rpartition(":")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"cannot bind {endpoint}: {exc.strerror}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(_BACKLOG)
    except (OSError, ValueError) as exc:
        sock.close()
        raise ConfigError(f"cannot bind {endpoint}: {getattr(exc, 'strerror', None) or exc}") \
            from exc
    return sock


def someone_listens(path: str) -> bool:
    """Whether a live process accepts connections on the Unix socket file at ``path`` (a file
    a dead process left is not listened on)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _listen_unix(endpoint: str, path: str, mode: int) -> socket.socket:
    """A listening Unix stream socket at ``path``.  A file left by a dead broker is replaced;
    one that a live process still accepts connections on is not (the lock file guards only
    the first socket path, and a second broker may be configured differently).  ``@name``
    is in the abstract namespace: no file, and the kernel refuses a name in use."""
    if path.startswith("@"):
        return _listen_abstract(endpoint, "\0" + path[1:])
    ensure_socket_dir(os.path.dirname(path) or ".")
    if someone_listens(path):
        raise ConfigError(f"another process accepts connections on {endpoint}; "
                          "refusing to steal its socket")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, mode)
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot bind {endpoint}: {exc.strerror or exc}") from exc
    return sock


def _listen_abstract(endpoint: str, name: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(name)
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot bind {endpoint}: {exc.strerror or exc}") from exc
    return sock

