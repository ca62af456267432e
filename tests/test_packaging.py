"""What a user installs: two wheels whose every module sits under the ``otelhouse`` namespace,
and an instrumentation distribution that installs none of the server.

An editable install in the tests would hide a missing package, so the wheels are built from a
copy of the tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER_FOLDERS = {
    "otelhouse": "otelhouse",
    "core": "otelhouse/core",
    "receiver": "otelhouse/receiver",
    "storage": "otelhouse/storage",
    "query": "otelhouse/query",
}
SERVER_ONLY = ("chdb", "clickhouse-connect", "clickhouse_connect")


def build_wheels(tmp_path: Path) -> tuple[Path, Path]:
    source = tmp_path / "src"
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*-data", "__pycache__")
    )
    for project in (source, source / "instrumentation"):
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(project)],
            check=True,
            timeout=300,
        )
    (server,) = tmp_path.glob("otelhouse-*.whl")
    (instrumentation,) = tmp_path.glob("otelhouse_instrumentation-*.whl")
    return server, instrumentation


def sources(folder: str, installed_as: str) -> set[str]:
    """The tracked modules and schema files of ``folder``, named as the wheel installs them."""
    tracked = subprocess.run(
        ["git", "ls-files", "--", f"{folder}/*.py", f"{folder}/*.sql"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return {f"{installed_as}/{Path(path).relative_to(folder).as_posix()}" for path in tracked}


def modules(wheel: Path) -> set[str]:
    return {name for name in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in name}


@pytest.mark.integration
def test_wheels_hold_every_module_under_the_otelhouse_namespace(tmp_path: Path) -> None:
    server, instrumentation = build_wheels(tmp_path)
    expected = set().union(*(sources(folder, to) for folder, to in SERVER_FOLDERS.items()))
    assert expected - modules(server) == set()
    assert sources("instrumentation", "otelhouse/instrumentation") - modules(
        instrumentation
    ) == set()
    for wheel in (server, instrumentation):
        assert {name.split("/")[0] for name in modules(wheel)} == {"otelhouse"}
        # a shared namespace: neither distribution may own its __init__.py
        assert "otelhouse/__init__.py" not in modules(wheel)
    assert not {name for name in modules(server) if name.startswith("otelhouse/instrumentation/")}


@pytest.mark.integration
def test_instrumentation_installs_alone_without_the_server(tmp_path: Path) -> None:
    """``pip install ./instrumentation`` into a fresh venv: ``instrument_app`` imports, and
    neither chdb nor clickhouse-connect (nor the server's modules) came with it."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(ROOT / "instrumentation")],
        check=True,
        timeout=600,
        capture_output=True,
    )
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m, importlib.util as u;"
            "from otelhouse.instrumentation import instrument_app;"
            "print(sorted(d.metadata['Name'].lower() for d in m.distributions()));"
            "print(u.find_spec('otelhouse.storage') is None)",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    installed, no_server = probe.stdout.splitlines()
    assert not [name for name in SERVER_ONLY if f"'{name}'" in installed]
    assert no_server == "True"


def test_no_generic_top_level_names_are_importable(tmp_path: Path) -> None:
    """The folders are installed as ``otelhouse.<folder>`` only (run outside the checkout, so
    the working directory does not put them on the path)."""
    for name in ("storage", "receiver", "query", "instrumentation"):
        result = subprocess.run(
            [sys.executable, "-c", f"import {name}"], cwd=tmp_path, capture_output=True, timeout=60
        )
        assert result.returncode != 0, name
    subprocess.run(
        [sys.executable, "-c", "import otelhouse.storage, otelhouse.instrumentation"],
        cwd=tmp_path,
        check=True,
        timeout=60,
    )
