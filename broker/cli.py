"""The ``ignite-broker`` command line: ``run``, ``upgrade``, ``check-config``, ``settings``,
``admin``, ``keygen``, ``dev-cluster`` and ``demo``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from . import __version__, log
from .config import ENV_PREFIX, SETTINGS, file_problems, load
from .errors import BrokerError, ConfigError


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if getattr(args, "node", None):
        overrides["cluster.nodes"] = args.node
    if args.endpoint:
        overrides["broker.endpoints"] = args.endpoint
    if getattr(args, "log_level", None):
        overrides["log.level"] = args.log_level
    return overrides


def _refuse_file_problems(cfg: Any, *, socket_dirs: bool = True) -> None:
    problems = file_problems(cfg, socket_dirs=socket_dirs)
    if problems:
        raise ConfigError("; ".join(problems))


def _cmd_run(args: argparse.Namespace) -> int:
    from .lifecycle import Broker

    overrides = _overrides(args)
    cfg = load(args.config, overrides)
    _refuse_file_problems(cfg, socket_dirs=False)  # run checks those as it makes them
    log.configure(cfg.log_level, cfg.log_format)
    _log_native()
    with asyncio.Runner(loop_factory=loop_factory(cfg.broker_event_loop)) as runner:
        return runner.run(Broker(cfg, config_path=args.config, overrides=overrides).run())


def _log_native() -> None:
    from . import native

    state = native.state()
    log.get("broker.native").info("native_hot_path", on=state.on, reason=state.reason,
                                  directory=state.directory)


def _cmd_native(args: argparse.Namespace) -> int:
    from . import native

    if args.action == "build":
        print(f"built: {native.build(force=args.force)}")
        return 0
    built = native.is_built()
    print(json.dumps({"built": built, "directory": str(native.build_path()),
                      "modules": [native.module_name(m) for m in native.HOT_MODULES]}, indent=2))
    return 0 if built else 1


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop for "uvloop" (required) and "auto" (when installed); None: asyncio's."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError("broker.event_loop = uvloop, but uvloop is not installed "
                              "(pip install uvloop)") from None
        return None
    return uvloop.new_event_loop


def _cmd_check_config(args: argparse.Namespace) -> int:
    from .access import check_config_files

    cfg = load(args.config, _overrides(args))
    warnings = check_config_files(cfg)  # owners and modes first: the more telling refusal
    _refuse_file_problems(cfg)
    for warning in warnings:
        print(f"ignite-broker: warning: {warning}", file=sys.stderr)
    print(json.dumps(cfg.public_view(), indent=2, sort_keys=True))
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    """A CURVE keypair: the broker's (broker.curve_secret_key_file, its public key to the
    stubs as IGNITE_BROKER_CURVE_SERVERKEY) or a client's (public key into
    broker.curve_client_keys)."""
    from .access import keygen

    public, secret = keygen()
    if args.secret_file:
        try:
            fd = os.open(args.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot create {args.secret_file}: {exc.strerror}") from exc
        with os.fdopen(fd, "w") as fh:
            fh.write(secret + "\n")
        print(f'public-key = "{public}"')
    else:
        print(f'public-key = "{public}"\nsecret-key = "{secret}"')
    return 0


def _cmd_admin(args: argparse.Namespace) -> int:
    from .admin import AdminError, query
    from .admintext import render

    endpoint = args.admin_endpoint or _default_admin_endpoint(args)
    words = list(args.words)
    if args.verb == "kill-client":
        words = [args.client] if args.client else ["--pid", str(args.pid)]
    command = " ".join([args.verb, *words])
    try:
        answer = query(endpoint, command)
    except AdminError as exc:
        print(f"ignite-broker: {exc}", file=sys.stderr)
        return 1
    if not answer.get("ok"):
        print(f"ignite-broker: {args.verb}: {answer.get('error')}", file=sys.stderr)
        return 1
    result = answer.get("result")
    print(json.dumps(result, indent=2, sort_keys=True) if args.json
          else render(command, result))
    return 0


def _default_admin_endpoint(args: argparse.Namespace) -> str:
    """The configured broker's admin socket; with no --config, the host's broker (systemd's
    /run/ignite-broker when it exists, else this user's runtime directory)."""
    from .config import admin_endpoint

    if args.config or args.endpoint:
        return admin_endpoint(load(args.config, _overrides(args)))
    from protocol.ipcstream import stub_runtime_dirs

    dirs = stub_runtime_dirs(os.environ, os.getuid())
    for directory in dirs:
        if os.path.exists(f"{directory}/admin.sock"):
            return f"ipc://{directory}/admin.sock"
    return f"ipc://{dirs[0]}/admin.sock"


def _cmd_upgrade(args: argparse.Namespace) -> int:
    """In-place upgrade: the running broker re-executes itself, handing its listening sockets
    to the new process, which serves before the old one drains and exits."""
    from .lifecycle import lock_path
    from .upgrade import request

    path = lock_path(load(args.config, _overrides(args)))
    if path is None:
        raise ConfigError("no lock file to find the running broker by (set broker.lock_file)")
    old, new = request(path, timeout=args.timeout)
    print(f"upgraded: pid {old} -> {new}")
    return 0


def _cmd_settings(args: argparse.Namespace) -> int:
    for s in SETTINGS:
        reload = "reloadable" if s.reloadable else "restart"
        env = ENV_PREFIX + s.name.upper().replace(".", "__")
        print(f"{s.name:32} {s.type.__name__:6} {reload:10} default={s.default!r}\n"
              f"    {s.help}\n    env: {env}")
        if s.applied:
            print(f"    reload applies it in {s.applied}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main

    return demo_main(workers=args.workers, nodes=args.nodes)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML configuration file (then IGNITE_BROKER__SECTION__KEY "
                                    "environment variables, then these options, win)")
    p.add_argument("--node", action="append", metavar="HOST:PORT",
                   help="Ignite node address (repeatable; replaces cluster.nodes)")
    p.add_argument("--endpoint", action="append", metavar="ENDPOINT",
                   help="endpoint to serve workers on (repeatable; replaces broker.endpoints): "
                        "unix:///PATH (Unix stream socket, the stub's default and fastest), "
                        "ipc:///PATH (ZeroMQ on a socket file) or tcp://HOST:PORT (ZeroMQ, "
                        "CURVE required)")
    p.add_argument("--log-level", choices=tuple(log.LEVELS),
                   help="replaces log.level")


_ADMIN_VERBS = {
    "status": "one screen: nodes, workers, rates, p99, errors, uptime, version, config file",
    "show": "a table: nodes|clients|stats|topology|config|registry|version",
    "pause": "hold new requests (each within its deadline) for cluster maintenance",
    "resume": "serve the held requests and new ones again",
    "reload": "re-read the config file now: prints what was applied and what needs a restart",
    "drain": "stop taking new work, finish the requests in flight and the open transactions, "
             "exit (as SIGTERM)",
    "kill-client": "disconnect a worker and release its transactions and cursors: "
                   "kill-client ID | kill-client --pid PID",
    "log-level": "the log level from now until the next reload or restart: "
                 "debug|info|warning|error",
    "memory": "what the broker's memory holds, for finding retention: "
              "memory [trace FRAMES|untrace|trim]",
}


def _add_admin_parser(sub: Any) -> None:
    admin = sub.add_parser("admin", help="ask the running broker (on its admin socket): "
                                         + ", ".join(_ADMIN_VERBS))
    _add_admin_options(admin, None)
    verbs = admin.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, text in _ADMIN_VERBS.items():
        p = verbs.add_parser(verb, help=text, description=text)
        _add_admin_options(p, argparse.SUPPRESS)
        if verb == "show":
            p.add_argument("words", nargs=1, metavar="WHAT", choices=(
                "nodes", "clients", "stats", "topology", "config", "registry", "version"))
        elif verb == "log-level":
            p.add_argument("words", nargs=1, metavar="LEVEL", choices=tuple(log.LEVELS))
        elif verb == "memory":
            p.add_argument("words", nargs="*", metavar="trace FRAMES|untrace|trim")
        elif verb == "kill-client":
            target = p.add_mutually_exclusive_group(required=True)
            target.add_argument("client", nargs="?", metavar="ID", help="from show clients")
            target.add_argument("--pid", type=int, help="every worker of this process")
        p.set_defaults(func=_cmd_admin, words=[])
    admin.set_defaults(func=_cmd_admin)


def _add_admin_options(p: argparse.ArgumentParser, default: Any) -> None:
    """On ``admin`` and on each verb (``admin --json status`` and ``admin status --json``);
    the verb's copies default to SUPPRESS so they never undo the ones given before it."""
    p.add_argument("--json", action="store_true", default=default or False,
                   help="print the answer as JSON")
    p.add_argument("--admin-endpoint", default=default, metavar="ipc:///PATH",
                   help="the broker's admin socket (default: from --config, else the "
                        "host's broker)")
    p.add_argument("--config", default=default, help="the broker's TOML configuration file")
    p.add_argument("--endpoint", action="append", default=default, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ignite-broker", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ignite-broker {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the broker daemon")
    _add_config_args(run)
    run.set_defaults(func=_cmd_run)

    check = sub.add_parser("check-config", help="validate the configuration and print it "
                                                "(secrets masked)")
    _add_config_args(check)
    check.set_defaults(func=_cmd_check_config)

    keygen = sub.add_parser("keygen", help="print a new CURVE keypair (Z85) for tcp://")
    keygen.add_argument("--secret-file", metavar="PATH",
                        help="write the secret key to PATH (created 0600, never overwritten) "
                             "and print only the public key")
    keygen.set_defaults(func=_cmd_keygen)

    _add_admin_parser(sub)

    upgrade = sub.add_parser("upgrade", help="replace the running broker by a new process "
                                             "(new code, same sockets) without refusing a worker")
    _add_config_args(upgrade)
    upgrade.add_argument("--timeout", type=float, default=90.0,
                         help="seconds to wait for the old process to exit (default 90)")
    upgrade.set_defaults(func=_cmd_upgrade)

    compiled = sub.add_parser("native", help="build the compiled hot path (mypyc) for these "
                                             "sources, or say whether it is built")
    compiled.add_argument("action", choices=["build", "status"])
    compiled.add_argument("--force", action="store_true", help="rebuild even when built")
    compiled.set_defaults(func=_cmd_native)

    settings = sub.add_parser("settings", help="list every setting with its default")
    settings.set_defaults(func=_cmd_settings)

    demo = sub.add_parser("demo", help="dev cluster + broker + worker processes, then tear down")
    demo.add_argument("--workers", type=int, default=4)
    demo.add_argument("--nodes", type=int, default=2)
    demo.set_defaults(func=_cmd_demo)

    from .devcluster.cli import add_parser as add_devcluster

    add_devcluster(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokerError as exc:
        print(f"ignite-broker: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
