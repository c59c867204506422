"""The optional compiled hot path: the broker's per-request modules built with mypyc, and
switched on at ``run`` only when the build matches the sources beside it.

The same sources stay the pure-Python fallback: nothing here changes what a module does, only
whether CPython runs its bytecode or mypyc's C.  A build lives in ``<native dir>/<digest>/``,
where the digest covers the sources of ``protocol`` and ``broker``, the interpreter and mypyc: a
changed source file therefore means "no build" (pure Python, said in the log and ``show version``),
never a stale extension shadowing new code.

    ignite-broker native build     # ~1 min; ./dev does it after each install
    ignite-broker native status
    IGNITE_BROKER_NATIVE=0         # run pure Python even when a build is there
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: The modules compiled, as source paths under the source root: the per-request path of
#: bench/stages.py and of the saturation profile (framing, envelope, dispatch, node I/O, the
#: thin-client codec of keys, values and complex objects, transactions and queries), nothing
#: that runs once per connection or config.
HOT_MODULES = (
    "protocol/_framing.py",
    "protocol/_connection.py",
    "protocol/_body.py",
    "protocol/ipc.py",
    "protocol/ipcstream.py",
    "protocol/ops.py",
    "protocol/binary/_engine.py",
    "protocol/binary/primitives.py",
    "protocol/binary/registry.py",
    "protocol/binary/complex.py",
    "protocol/binary/standard.py",
    "protocol/hashing.py",
    "broker/frontend.py",
    "broker/nodeconn.py",
    "broker/dispatch.py",
    "broker/calls.py",
    "broker/context.py",
    "broker/ops_kv.py",
    "broker/ops_query.py",
    "broker/batching.py",
    "broker/pool.py",
    "broker/topology.py",
    "broker/lookups.py",
    "broker/budget.py",
    "broker/latencies.py",
    "broker/metrics.py",
)
#: The packages whose ``__path__`` a build is put in front of.
PACKAGES = ("protocol", "protocol.binary", "broker")
#: The source trees a build reads (copied for mypyc, and digested), less the part it does not.
SOURCE_PACKAGES = ("protocol", "broker")
NOT_READ = "devcluster"
SWITCH = "IGNITE_BROKER_NATIVE"
DIR_VARIABLE = "IGNITE_BROKER_NATIVE_DIR"
MANIFEST = "manifest.json"
#: broker/stages.py's switch (not imported: it would import the modules it wraps).
STAGES_VARIABLE = "IGNITE_BROKER_STAGES"
_OFF_WORDS = {"0", "off", "no", "false"}
#: What mypyc needs to know beyond the sources: untyped third-party packages are Any.
_MYPY_CONFIG = "[mypy]\npython_version = 3.11\nignore_missing_imports = True\n"


@dataclass(frozen=True)
class State:
    """Whether this process runs the compiled hot path, and why not when it does not."""

    on: bool
    reason: str
    directory: str | None = None

    def describe(self) -> dict[str, object]:
        return {"on": self.on, "reason": self.reason, "directory": self.directory,
                "compiled_modules": len(compiled_modules())}


_state = State(False, "not activated (only `ignite-broker run` switches it on)")


def module_name(source: str) -> str:
    return source.removesuffix(".py").replace("/", ".")


def source_root() -> Path:
    """The directory holding the ``protocol`` and ``broker`` packages this process imports."""
    return Path(__file__).resolve().parents[1]


def native_dir() -> Path:
    """Where builds live: ``$IGNITE_BROKER_NATIVE_DIR``, else beside the interpreter's prefix
    (the venv's own directory under ./dev)."""
    chosen = os.environ.get(DIR_VARIABLE)
    return Path(chosen) if chosen else Path(sys.prefix) / "ignite-broker-native"


def _mypyc_version() -> str:
    try:
        from importlib.metadata import version

        return version("mypy")
    except Exception:  # mypy absent: no build can exist for it, the digest says so
        return "absent"


def digested_sources(root: Path) -> list[Path]:
    """Every source mypyc reads for a build: the compiled modules are typed against the rest
    of ``protocol`` and ``broker`` (what a call returns is checked at run time), so an edit
    to any of them makes a new build, not a compiled module out of step with its callees."""
    return sorted(path for package in SOURCE_PACKAGES
                  for path in (root / package).rglob("*.py")
                  if NOT_READ not in path.relative_to(root).parts)


def source_digest(root: Path | None = None) -> str:
    """sha256 over the sources of a build, the interpreter and mypyc's version."""
    root = root or source_root()
    digest = hashlib.sha256(f"{sys.implementation.cache_tag} mypy {_mypyc_version()}".encode())
    for path in digested_sources(root):
        name = path.relative_to(root).as_posix()
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


def build_path(root: Path | None = None) -> Path:
    return native_dir() / source_digest(root)


def is_built(root: Path | None = None) -> bool:
    return _complete(build_path(root))


def _complete(build: Path) -> bool:
    """A build's manifest is written last: without it the directory is no build."""
    return (build / MANIFEST).is_file()


def build(root: Path | None = None, *, force: bool = False) -> Path:
    """Compiles HOT_MODULES into ``<native dir>/<digest>`` (a no-op when it exists); builds of
    other digests but the newest few are removed.  Raises NativeBuildError with mypyc's output
    on failure."""
    root = root or source_root()
    dest = build_path(root)
    if _complete(dest) and not force:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ignite-broker-mypyc-") as work:
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=dest.parent))
        try:
            _compile(root, Path(work))
            _collect(Path(work), staging)
            (staging / MANIFEST).write_text(json.dumps(
                {"digest": dest.name, "modules": [module_name(m) for m in HOT_MODULES],
                 "python": sys.version, "mypy": _mypyc_version()}, indent=2) + "\n")
            shutil.rmtree(dest, ignore_errors=True)
            staging.rename(dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    _prune(dest)
    return dest


def _compile(root: Path, work: Path) -> None:
    from .errors import NativeBuildError  # not at the top: it imports protocol.ipc, a HOT_MODULE

    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc", NOT_READ)
    for package in SOURCE_PACKAGES:
        shutil.copytree(root / package, work / package, ignore=ignore)
    (work / "mypy.ini").write_text(_MYPY_CONFIG)
    command = [sys.executable, "-m", "mypyc", "--config-file", "mypy.ini", *HOT_MODULES]
    try:
        done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NativeBuildError(f"mypyc did not run: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise NativeBuildError(f"mypyc failed ({done.returncode}):\n{tail}")


def _collect(work: Path, staging: Path) -> None:
    """The extension of each module, and mypyc's shared library of the group, into staging."""
    from .errors import NativeBuildError

    for library in work.glob("*__mypyc*.so"):
        shutil.copy2(library, staging / library.name)
    for source in HOT_MODULES:
        stem = work / source.removesuffix(".py")
        found = sorted(stem.parent.glob(stem.name + ".*.so"))
        if not found:
            raise NativeBuildError(f"mypyc made no extension for {source}")
        target = staging / found[0].relative_to(work)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(found[0], target)


#: Builds kept besides the newest (two checkouts sharing one venv need not rebuild by turns).
KEEP_OLDER_BUILDS = 2


def _prune(newest: Path) -> None:
    builds = [other for other in newest.parent.iterdir() if other != newest and _complete(other)]
    builds.sort(key=lambda build: (build / MANIFEST).stat().st_mtime, reverse=True)
    for old in builds[KEEP_OLDER_BUILDS:]:
        shutil.rmtree(old, ignore_errors=True)


def activate() -> State:
    """Puts the build for these sources in front of the packages' paths, before any compiled
    module is imported; says why not when it cannot (switched off, no build, too late)."""
    global _state
    _state = _decide()
    if _state.on:
        assert _state.directory is not None
        _overlay(Path(_state.directory))
    return _state


def _decide() -> State:
    if os.environ.get(SWITCH, "").strip().lower() in _OFF_WORDS:
        return State(False, f"switched off ({SWITCH}={os.environ[SWITCH]})")
    if os.environ.get(STAGES_VARIABLE):
        return State(False, f"{STAGES_VARIABLE} wraps methods, which compiled classes refuse")
    early = [name for name in map(module_name, HOT_MODULES) if name in sys.modules]
    if early:
        return State(False, f"{early[0]} was imported before the build could be used")
    try:  # an unreadable source or build directory (another user's venv) means pure Python
        dest = build_path()
        built = _complete(dest)
    except OSError as exc:
        return State(False, f"the sources or the build could not be read: {exc}")
    if not built:
        return State(False, f"no build for these sources in {dest.parent} "
                            "(`ignite-broker native build`)")
    return State(True, "the build matches these sources", str(dest))


def _overlay(dest: Path) -> None:
    sys.path.insert(0, str(dest))  # mypyc's shared library of the group is top-level
    for package in PACKAGES:
        module = importlib.import_module(package)
        module.__path__.insert(0, str(dest.joinpath(*package.split("."))))


def state() -> State:
    return _state


def compiled_modules() -> list[str]:
    """The HOT_MODULES this process has imported from an extension, not from source."""
    names = (module_name(m) for m in HOT_MODULES)
    return [name for name in names
            if not str(getattr(sys.modules.get(name), "__file__", "") or "").endswith(".py")
            and name in sys.modules]
