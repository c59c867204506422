"""broker/native.py without a compiler: which sources a build's digest covers, and when
``ignite-broker run`` uses a build (fresh interpreters, so nothing compiled is imported early)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from broker import native

ROOT = native.source_root()


def _copy_sources(to: Path) -> Path:
    for path in native.digested_sources(ROOT):
        target = to / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return to


def test_the_digest_changes_with_any_source_a_build_reads(tmp_path: Path) -> None:
    root = _copy_sources(tmp_path)
    first = native.source_digest(root)
    assert native.source_digest(root) == first
    seen = {first}
    for source in (native.HOT_MODULES[0], native.HOT_MODULES[-1], "protocol/cluster.py"):
        path = root / source
        path.write_bytes(path.read_bytes() + b"\n# changed\n")
        seen.add(native.source_digest(root))
    assert len(seen) == 4
    names = {p.relative_to(root).as_posix() for p in native.digested_sources(root)}
    assert set(native.HOT_MODULES) <= names
    assert not any("devcluster" in name for name in names)


def test_every_compiled_module_exists_and_sits_in_a_package_the_build_is_put_in_front_of() -> None:
    for source in native.HOT_MODULES:
        assert (ROOT / source).is_file(), source
        package = native.module_name(source).rpartition(".")[0]
        assert package in native.PACKAGES, source


def _activate_in_a_fresh_interpreter(env: dict[str, str], then: str = "pass") -> dict[str, object]:
    code = ("import json, sys; from broker import native; state = native.activate(); "
            f"{then}; print(json.dumps(state.describe()))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_without_a_build_for_these_sources_the_broker_runs_pure_python(tmp_path: Path) -> None:
    state = _activate_in_a_fresh_interpreter({native.DIR_VARIABLE: str(tmp_path)},
                                             then="import broker.dispatch")
    assert state["on"] is False
    assert "no build for these sources" in str(state["reason"])
    assert state["compiled_modules"] == 0


def test_switched_off_it_ignores_a_build(tmp_path: Path) -> None:
    build = tmp_path / _digest_in_a_fresh_interpreter()
    build.mkdir()
    (build / native.MANIFEST).write_text("{}")
    state = _activate_in_a_fresh_interpreter({native.DIR_VARIABLE: str(tmp_path),
                                              native.SWITCH: "0"})
    assert state["on"] is False
    assert "switched off" in str(state["reason"])


def test_the_stage_rung_runs_pure_python(tmp_path: Path) -> None:
    """broker/stages.py replaces methods of classes the build compiles (which refuse that)."""
    from broker import stages

    assert native.STAGES_VARIABLE == stages.ENV
    build = tmp_path / _digest_in_a_fresh_interpreter()
    build.mkdir()
    (build / native.MANIFEST).write_text("{}")
    state = _activate_in_a_fresh_interpreter({native.DIR_VARIABLE: str(tmp_path),
                                              stages.ENV: str(tmp_path / "stages.txt")})
    assert state["on"] is False
    assert stages.ENV in str(state["reason"])


def test_a_build_matching_the_sources_goes_in_front_of_the_packages(tmp_path: Path) -> None:
    """A build directory without extensions: activation puts it first on every package's path
    and imports still find the sources (what a build holds is compiled_modules' business)."""
    build = tmp_path / _digest_in_a_fresh_interpreter()
    build.mkdir()
    (build / native.MANIFEST).write_text("{}")
    then = ("import protocol, protocol.binary, broker; "
            f"assert all(m.__path__[0].startswith({str(build)!r}) "
            "for m in (protocol, protocol.binary, broker)); "
            "import broker.dispatch")
    state = _activate_in_a_fresh_interpreter({native.DIR_VARIABLE: str(tmp_path)}, then=then)
    assert state["on"] is True
    assert state["directory"] == str(build)
    assert state["compiled_modules"] == 0


def test_a_compiled_module_imported_first_keeps_the_process_pure(tmp_path: Path) -> None:
    build = tmp_path / _digest_in_a_fresh_interpreter()
    build.mkdir()
    (build / native.MANIFEST).write_text("{}")
    code = ("import json, protocol.ipc; from broker import native; "
            "print(json.dumps(native.activate().describe()))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, native.DIR_VARIABLE: str(tmp_path)}, timeout=60,
                          check=True)
    state = json.loads(done.stdout)
    assert state["on"] is False
    assert "protocol.ipc was imported before" in state["reason"]


def _digest_in_a_fresh_interpreter() -> str:
    code = "from broker import native; print(native.source_digest())"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True).stdout.strip()


@pytest.mark.parametrize("words, activates", [(["run", "--help"], True),
                                              (["settings"], False)])
def test_only_run_switches_it_on(tmp_path: Path, words: list[str], activates: bool) -> None:
    """``ignite-broker run`` activates before the command line imports anything compiled."""
    code = ("import sys, json; from broker import launch, native\n"
            "try:\n    launch.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(native.state().describe()))")
    done = subprocess.run([sys.executable, "-c", code, *words], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, native.DIR_VARIABLE: str(tmp_path)},
                          timeout=60, check=True)
    state = json.loads(done.stdout.strip().splitlines()[-1])
    if activates:
        assert "no build for these sources" in state["reason"]
    else:
        assert "not activated" in state["reason"]
