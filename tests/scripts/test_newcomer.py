"""scripts/newcomer.py, the check CI runs: it must find the README's commands and see
what a stopped stack leaves behind. (Its whole run is CI itself: .ci/run.)"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from helpers import ROOT


@pytest.fixture(scope="module")
def newcomer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("newcomer", ROOT / "scripts" / "newcomer.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["newcomer"] = module
    spec.loader.exec_module(module)
    return module


def test_it_runs_the_readme_s_two_commands(newcomer: ModuleType) -> None:
    up, test = newcomer.readme_commands(ROOT / "README.md")
    assert (up, test) == ("bash scripts/up.sh", "bash scripts/test.sh")
    for command in (up, test):
        assert (ROOT / command.split()[1]).is_file()
    assert "scripts/newcomer.py" in (ROOT / ".ci" / "run").read_text()


def test_a_readme_without_the_section_is_a_clear_failure(
    newcomer: ModuleType, tmp_path: Path
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Install\n\n```bash\nmake\n```\n")
    with pytest.raises(newcomer.Failed, match="no '## Two commands' section"):
        newcomer.readme_commands(readme)


def test_leftovers_are_the_processes_running_from_the_folder(
    newcomer: ModuleType, tmp_path: Path
) -> None:
    process = subprocess.Popen(["sleep", "30"], cwd=tmp_path)
    try:
        assert any(line.startswith(f"{process.pid}:") for line in newcomer.leftovers(tmp_path))
    finally:
        process.kill()
        process.wait()
    assert newcomer.leftovers(tmp_path) == []
