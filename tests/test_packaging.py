"""Packaging: the wheel a worker installs holds the whole bundle, and what is declared
is what is imported.

The README's commands install the project in editable mode, which hides a
wheel without subpackages (``[tool.setuptools] packages`` ships only the listed
ones). So the wheel is built from a clean copy of the project, installed into a
fresh virtual environment that cannot see the source tree, and the deployed
flows are imported from there.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from helpers import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
EXCEPTIONS = PYPROJECT["tool"]["prefect-janitor"]["dependencies"]
# The packages, the tests' helpers, and the scripts, which import one another
# (benchkit, bench_cleanup_methods) from their own folder.
OWN = {"triggers", "flows", "helpers", "scripts", "conftest"} | {
    path.stem for path in (ROOT / "scripts").glob("*.py")
}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return _normal(match.group(0))


def _imported(folders: list[str]) -> set[str]:
    """The distributions whose modules the code in ``folders`` imports."""
    tops: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    tops |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    tops.add(node.module.split(".")[0])
    providers = metadata.packages_distributions()
    found: set[str] = set()
    for top in tops - OWN - set(sys.stdlib_module_names):
        assert top in providers, f"{top} is imported but no installed distribution provides it"
        found |= {_normal(name) for name in providers[top]}
    return found


def _declared(group: list[str]) -> set[str]:
    return {_requirement_name(requirement) for requirement in group}


def test_declared_dependencies_are_what_the_code_imports() -> None:
    declared = _declared(PYPROJECT["project"]["dependencies"])
    imported = _imported(["triggers", "flows", "scripts"])
    caps = {_normal(name) for name in EXCEPTIONS["caps"]}
    commands = {_normal(name) for name in EXCEPTIONS["commands"]}
    missing = sorted(imported - declared)
    unused = sorted(declared - imported - caps - commands)
    assert (missing, unused) == ([], []), (
        f"imported but not declared: {missing}; declared but not imported: {unused} "
        "(declare a cap or a command under [tool.prefect-janitor.dependencies])"
    )


def test_each_cap_caps_a_dependency_and_is_never_imported() -> None:
    imported = _imported(["triggers", "flows", "scripts", "tests"])
    declared = _declared(PYPROJECT["project"]["dependencies"])
    for cap in EXCEPTIONS["caps"]:
        assert _normal(cap) not in imported, f"{cap} is imported: declare it as a dependency"
        wanted_by = [
            name
            for name in declared - {_normal(cap)}
            if any(_requirement_name(r) == _normal(cap) for r in metadata.requires(name) or [])
        ]
        assert wanted_by, f"{cap} caps nothing: no declared dependency requires it"


def test_each_command_dependency_provides_the_program_the_code_runs() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "flows").rglob("*.py"))
    for distribution, program in EXCEPTIONS["commands"].items():
        scripts = {e.name for e in metadata.distribution(distribution).entry_points}
        assert program in scripts, f"{distribution} has no console script {program}"
        assert f'"{program}"' in source, f"nothing in flows/ runs {program}"


def test_dev_dependencies_are_what_the_tests_import_plus_the_tools() -> None:
    runtime = _declared(PYPROJECT["project"]["dependencies"])
    dev = _declared(PYPROJECT["project"]["optional-dependencies"]["dev"])
    tools = {_normal(name) for name in EXCEPTIONS["dev-tools"]}
    needed = _imported(["tests"]) - runtime
    assert (sorted(needed - dev), sorted(dev - needed - tools)) == ([], []), (
        "(tests import but dev does not declare, dev declares but nothing uses)"
    )


def _project_files() -> list[str]:
    """What a clean checkout holds: tracked files and new ones not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [name for name in listed if (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is needed to copy a clean checkout")
    checkout = tmp_path_factory.mktemp("checkout")
    for name in _project_files():
        target = checkout / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    dist = tmp_path_factory.mktemp("dist")
    # No build isolation: the pinned setuptools of the environment builds it, offline.
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"),
            *("--no-build-isolation", "--wheel-dir", str(dist), str(checkout)),
        ],
        check=True,
        cwd=checkout,
    )
    (built,) = dist.glob("prefect_janitor-*.whl")
    return built


def test_the_wheel_holds_every_module_of_both_packages(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    expected = {
        path.relative_to(ROOT).as_posix()
        for package in ("triggers", "flows")
        for path in (ROOT / package).rglob("*")
        if path.suffix in (".py", ".typed") and "__pycache__" not in path.parts
    }
    assert sorted(expected - shipped) == []
    assert not any(name.startswith(("tests/", "scripts/")) for name in shipped)


def test_the_wheel_alone_runs_the_deployed_flows(wheel: Path, tmp_path: Path) -> None:
    """A fresh environment with the dependencies but not the source tree (an editable
    install's finder is not carried over) imports the flows from the installed wheel."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # The dependencies come from this environment, as a path line: .pth files in that
    # folder (the editable install's finder among them) are not processed from there.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"),
            *("--target", str(site), str(wheel)),
        ],
        check=True,
    )
    code = (
        "import flows, flows.cleanup.flow, flows.probe.flow, flows.serve, triggers.sync; "
        "from flows.cleanup.flow import database_cleanup; "
        "print(flows.__file__); print(database_cleanup.name)"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    found = subprocess.run(
        [str(python), "-I", "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environ,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr[-3000:]
    location, name = found.stdout.split()
    assert Path(location).is_relative_to(site), location
    assert not Path(location).is_relative_to(ROOT)
    assert name == "database-cleanup"
