"""Owns the local Ignite runtime: Maven jar resolution, JVM argfile and compiled launcher."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from broker.devcluster.errors import DevClusterError

# Preferred version first; a later entry is used only when every earlier one fails to resolve.
IGNITE_VERSIONS = ("2.18.0", "2.17.0")
IGNITE_ARTIFACTS = ("ignite-core", "ignite-indexing")
# Only for nodes with tx-aware queries (its ~30 MB of jars stay off the default class path).
CALCITE_ARTIFACT = "ignite-calcite"
LAUNCHER_CLASS = "IgniteDevNode"
_LAUNCHER_SOURCE = Path(__file__).with_name(f"{LAUNCHER_CLASS}.java")
_COMPLETE = ".complete"
_CHOICE_FILE = "ignite-version.json"
# A recorded fallback is trusted this long before the preferred version is tried again.
_CHOICE_TTL_S = 24 * 3600

# From Ignite's bin/include/jvmdefaults.sh (Java >= 15 branch); see shared/ignite-test-cluster.md.
ADD_OPENS = (
    "java.base/jdk.internal.access",
    "java.base/jdk.internal.misc",
    "java.base/sun.nio.ch",
    "java.base/sun.util.calendar",
    "java.management/com.sun.jmx.mbeanserver",
    "jdk.internal.jvmstat/sun.jvmstat.monitor",
    "java.base/sun.reflect.generics.reflectiveObjects",
    "jdk.management/com.sun.management.internal",
    "java.base/java.io",
    "java.base/java.nio",
    "java.base/java.net",
    "java.base/java.util",
    "java.base/java.util.concurrent",
    "java.base/java.util.concurrent.locks",
    "java.base/java.util.concurrent.atomic",
    "java.base/java.lang",
    "java.base/java.lang.invoke",
    "java.base/java.math",
    "java.sql/java.sql",
    "java.base/java.lang.reflect",
    "java.base/java.time",
    "java.base/java.text",
    "java.management/sun.management",
    "java.desktop/java.awt.font",
)
JVM_OPTIONS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:MaxDirectMemorySize=256m",
    "-Djava.net.preferIPv4Stack=true",
    "-DIGNITE_UPDATE_NOTIFIER=false",
    "-DIGNITE_PERFORMANCE_SUGGESTIONS_DISABLED=true",
    "-DIGNITE_NO_ASCII=true",
)

_POM_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>ignite-broker.devcluster</groupId>
  <artifactId>ignite-runtime</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""
_DEPENDENCY_TEMPLATE = """    <dependency>
      <groupId>org.apache.ignite</groupId>
      <artifactId>{artifact}</artifactId>
      <version>{version}</version>
    </dependency>"""

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_MISSING_ARTIFACT = re.compile(r"\S+:\S+:jar:\S+ was not found in \S+")

Notify = Callable[[str], None]


@dataclass(frozen=True)
class IgniteRuntime:
    """Everything needed to launch one dev node: jars, compiled launcher and JVM argfile."""

    version: str
    lib_dir: Path
    classes_dir: Path
    jvm_argfile: Path
    calcite_dir: Path | None = None

    @property
    def classpath(self) -> str:
        extra = f"{os.pathsep}{self.calcite_dir}/*" if self.calcite_dir else ""
        return f"{self.lib_dir}/*{extra}{os.pathsep}{self.classes_dir}"


def cache_dir() -> Path:
    """Root of the jar/launcher cache: $IGNITE_BROKER_CACHE or ~/.cache/ignite-broker."""
    configured = os.environ.get("IGNITE_BROKER_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "ignite-broker"


def prepare_runtime(notify: Notify | None = None, *, calcite: bool = False) -> IgniteRuntime:
    """Resolve the jars, compile the launcher and write the JVM argfile (each step cached);
    with ``calcite`` also the Calcite SQL engine's jars."""
    notify = notify or _print_stderr
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    # Several processes (pytest workers, parallel CLI calls) may prepare at once.
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        version, lib_dir = resolve_ignite(root, notify)
        classes_dir = compile_launcher(lib_dir)
        calcite_dir = resolve_calcite(root, version, notify) if calcite else None
        return IgniteRuntime(version, lib_dir, classes_dir, write_jvm_argfile(root), calcite_dir)


def resolve_ignite(root: Path, notify: Notify) -> tuple[str, Path]:
    """Return (version, lib dir) of a fully resolved jar set, preferring IGNITE_VERSIONS[0]."""
    recorded = _read_choice(root)
    if recorded and _is_reusable(root, recorded):
        _announce_fallback(recorded, notify)
        version = str(recorded["version"])
        return version, _lib_dir(root, version)
    failures: list[str] = []
    for version in IGNITE_VERSIONS:
        error = _resolve_version(root, version, notify)
        if error is None:
            choice = _record_choice(root, version, failures)
            _announce_fallback(choice, notify)
            return version, _lib_dir(root, version)
        failures.append(f"{version}: {error}")
    raise DevClusterError("cannot resolve Ignite jars with Maven:\n  " + "\n  ".join(failures))


def resolve_calcite(root: Path, version: str, notify: Notify) -> Path:
    """The ignite-calcite jars of version that lib/ lacks, in ignite-<version>/calcite."""
    lib_dir = _lib_dir(root, version)
    calcite_dir = lib_dir.with_name("calcite")
    error = _resolve_jars(calcite_dir, version, (CALCITE_ARTIFACT,), notify)
    if error is not None:
        raise DevClusterError(f"cannot resolve {CALCITE_ARTIFACT} {version} with Maven: {error}")
    for jar in calcite_dir.glob("*.jar"):
        if (lib_dir / jar.name).exists():  # ignite-core and its dependencies, once is enough
            jar.unlink()
    return calcite_dir


def compile_launcher(lib_dir: Path) -> Path:
    """Compile IgniteDevNode.java next to lib_dir, keyed by the source hash."""
    source = _LAUNCHER_SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    classes_dir = lib_dir.parent / f"classes-{digest}"
    if _is_complete(classes_dir):
        return classes_dir
    shutil.rmtree(classes_dir, ignore_errors=True)
    classes_dir.mkdir(parents=True)
    cmd = [
        jdk_tool("javac"), "-nowarn", "-encoding", "UTF-8",
        "-cp", f"{lib_dir}/*", "-d", str(classes_dir), str(_LAUNCHER_SOURCE),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DevClusterError(f"javac failed for {_LAUNCHER_SOURCE}:\n{result.stderr.strip()}")
    _mark_complete(classes_dir)
    return classes_dir


def write_jvm_argfile(root: Path) -> Path:
    """Write the JVM @argfile (add-opens and memory/system options) if its content changed."""
    lines = [f"--add-opens={module}=ALL-UNNAMED" for module in ADD_OPENS]
    lines.extend(JVM_OPTIONS)
    content = "\n".join(lines) + "\n"
    path = root / "jvm.args"
    if not path.exists() or path.read_text() != content:
        root.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, content)
    return path


def java_executable() -> str:
    """The `java` binary: $JAVA_HOME/bin/java when set, else the one on PATH."""
    return jdk_tool("java")


def _resolve_version(root: Path, version: str, notify: Notify) -> str | None:
    """Resolve one version's full jar set into ignite-<version>/lib; return an error or None."""
    return _resolve_jars(_lib_dir(root, version), version, IGNITE_ARTIFACTS, notify)


def _resolve_jars(lib_dir: Path, version: str, artifacts: tuple[str, ...],
                  notify: Notify) -> str | None:
    """Resolve artifacts (with their dependencies) into lib_dir, its pom.xml next to it
    (named after lib_dir); return an error or None."""
    if _is_complete(lib_dir):
        return None
    notify(f"dev-cluster: resolving Apache Ignite {version} jars with Maven into {lib_dir} ...")
    pom = lib_dir.parent / ("pom.xml" if lib_dir.name == "lib" else f"pom-{lib_dir.name}.xml")
    shutil.rmtree(lib_dir, ignore_errors=True)
    lib_dir.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(pom, _render_pom(version, artifacts))
    cmd = [
        shutil.which("mvn") or "mvn", "-B", "-q", "-Dstyle.color=never", "-f", str(pom),
        "dependency:copy-dependencies", f"-DoutputDirectory={lib_dir}",
    ]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise DevClusterError("`mvn` not found on PATH; Maven is needed to fetch Ignite") from None
    if result.returncode != 0:
        shutil.rmtree(lib_dir, ignore_errors=True)
        return _summarise_maven_error(result.stdout + result.stderr)
    _mark_complete(lib_dir)
    return None


def _render_pom(version: str, artifacts: tuple[str, ...] = IGNITE_ARTIFACTS) -> str:
    dependencies = "\n".join(
        _DEPENDENCY_TEMPLATE.format(artifact=artifact, version=version)
        for artifact in artifacts
    )
    return _POM_TEMPLATE.format(version=version, dependencies=dependencies)


def _summarise_maven_error(output: str) -> str:
    output = _ANSI_ESCAPE.sub("", output)
    missing = _MISSING_ARTIFACT.search(output)
    if missing:
        return missing.group(0)
    errors = [line for line in output.splitlines() if line.startswith("[ERROR]")]
    first = errors[0] if errors else (output.strip().splitlines() or ["mvn failed"])[-1]
    return first.removeprefix("[ERROR]").strip()[:300]


def _record_choice(root: Path, version: str, failures: list[str]) -> dict[str, object]:
    choice: dict[str, object] = {
        "version": version,
        "preferred": IGNITE_VERSIONS[0],
        "reason": "; ".join(failures),
        "decided_at": time.time(),
    }
    _atomic_write(root / _CHOICE_FILE, json.dumps(choice, indent=2) + "\n")
    return choice


def _read_choice(root: Path) -> dict[str, object] | None:
    try:
        choice = json.loads((root / _CHOICE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return choice if isinstance(choice, dict) and "version" in choice else None


def _is_reusable(root: Path, choice: dict[str, object]) -> bool:
    """A recorded preferred version is kept; a recorded fallback only for _CHOICE_TTL_S."""
    version = str(choice["version"])
    if not _is_complete(_lib_dir(root, version)):
        return False
    decided_at = choice.get("decided_at")
    fresh = isinstance(decided_at, int | float) and time.time() - decided_at < _CHOICE_TTL_S
    return version == IGNITE_VERSIONS[0] or fresh


def _announce_fallback(choice: dict[str, object], notify: Notify) -> None:
    if choice["version"] != IGNITE_VERSIONS[0]:
        notify(
            f"dev-cluster: NOTICE using Apache Ignite {choice['version']} instead of "
            f"{IGNITE_VERSIONS[0]} because the {IGNITE_VERSIONS[0]} jar set "
            f"({', '.join(IGNITE_ARTIFACTS)}) could not be resolved: {choice.get('reason')}"
        )


def _lib_dir(root: Path, version: str) -> Path:
    return root / f"ignite-{version}" / "lib"


def _is_complete(directory: Path) -> bool:
    return (directory / _COMPLETE).is_file()


def _mark_complete(directory: Path) -> None:
    (directory / _COMPLETE).write_text(f"{time.time()}\n")


def _atomic_write(path: Path, content: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(content)
    tmp.replace(path)


def jdk_tool(name: str) -> str:
    """Path of a JDK tool (java, javac, keytool): $JAVA_HOME/bin first, then PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / name).is_file():
        return str(Path(java_home) / "bin" / name)
    found = shutil.which(name)
    if not found:
        raise DevClusterError(f"`{name}` not found (install a JDK 17 or set JAVA_HOME)")
    return found


def _print_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
