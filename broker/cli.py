"""The ``ignite-broker`` command line: ``run``, ``upgrade``, ``check-config``, ``keygen``,
``dev-cluster`` and ``demo``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from . import __version__, log
from .config import SETTINGS, load
from .errors import BrokerError, ConfigError


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.node:
        overrides["cluster.nodes"] = args.node
    if args.endpoint:
        overrides["broker.endpoints"] = args.endpoint
    return overrides


def _cmd_run(args: argparse.Namespace) -> int:
    from .lifecycle import Broker

    overrides = _overrides(args)
    cfg = load(args.config, overrides)
    log.configure(cfg.log_level, cfg.log_format)
    with asyncio.Runner(loop_factory=loop_factory(cfg.broker_event_loop)) as runner:
        return runner.run(Broker(cfg, config_path=args.config, overrides=overrides).run())


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
    for warning in check_config_files(cfg):
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
    from .admin import query
    from .config import admin_endpoint

    endpoint = args.admin_endpoint or admin_endpoint(load(args.config, _overrides(args)))
    if not endpoint:
        print("ignite-broker: no admin endpoint (give --admin-endpoint)", file=sys.stderr)
        return 2
    answer = query(endpoint, " ".join(args.words))
    print(json.dumps(answer.get("result", answer), indent=2, sort_keys=True))
    return 0 if answer.get("ok") else 1


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
        print(f"{s.name:32} {s.type.__name__:6} {reload:10} default={s.default!r}\n    {s.help}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main

    return demo_main(workers=args.workers, nodes=args.nodes)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML configuration file")
    p.add_argument("--node", action="append", metavar="HOST:PORT",
                   help="Ignite node address (repeatable; replaces cluster.nodes)")
    p.add_argument("--endpoint", action="append", metavar="ENDPOINT",
                   help="ZeroMQ endpoint to bind (repeatable; replaces broker.endpoints)")


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

    admin = sub.add_parser("admin", help="ask a running broker: show nodes|clients|stats|"
                                         "topology|config|version")
    _add_config_args(admin)
    admin.add_argument("--admin-endpoint", help="the broker's admin socket")
    admin.add_argument("words", nargs="+", metavar="WORD", help="e.g. show stats")
    admin.set_defaults(func=_cmd_admin)

    upgrade = sub.add_parser("upgrade", help="replace the running broker by a new process "
                                             "(new code, same sockets) without refusing a worker")
    _add_config_args(upgrade)
    upgrade.add_argument("--timeout", type=float, default=90.0,
                         help="seconds to wait for the old process to exit (default 90)")
    upgrade.set_defaults(func=_cmd_upgrade)

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
