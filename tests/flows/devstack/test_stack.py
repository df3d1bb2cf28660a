"""The local stack refuses, before starting anything, what would break the one already there.

The whole stack (server, serving, sync, Ctrl-C, a second start after a kill) is
tested through its script in tests/scripts/test_stack.py.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from flows.devstack.folder import StackFolder
from flows.devstack.processes import free_port
from flows.devstack.stack import Stack
from flows.errors import StackError


def test_one_stack_per_folder(tmp_path: Path) -> None:
    held = StackFolder(tmp_path)
    held.lock()
    try:
        stack = Stack(tmp_path, port=free_port(), say=lambda _: None)
        with pytest.raises(StackError, match="another local stack is running from"):
            stack.start()
        held.remember([123456789])
        assert stack.stop() is False, "nothing was started"
        assert (tmp_path / "stack.json").exists(), "the record is the running stack's"
    finally:
        held.release()
    assert not (tmp_path / "stack.json").exists()
    assert not (tmp_path / "prefect.db").exists()


def test_a_taken_port_is_named_with_the_fix(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = Stack(tmp_path, port=port, say=lambda _: None)
        with pytest.raises(StackError, match=f"--port {port + 100}"):
            stack.start()
        assert stack.stop() is False, "nothing was started"
    again = StackFolder(tmp_path)
    again.lock()  # the refused stack let go of the folder
    again.release()


def test_a_record_of_processes_long_gone_is_dropped(tmp_path: Path) -> None:
    folder = StackFolder(tmp_path)
    folder.lock()
    folder.remember([2**22 + 7])  # no such process
    said: list[str] = []
    folder.stop_leftovers(said.append)
    assert said == []
    assert not (tmp_path / "stack.json").exists()
    folder.release()


def test_the_demo_starts_from_nothing_and_keeps_its_lock(tmp_path: Path) -> None:
    folder = StackFolder(tmp_path)
    folder.lock()
    folder.reset()  # an empty folder becomes the demo's
    (tmp_path / "prefect.db").write_text("old")
    (tmp_path / "server").mkdir()
    (tmp_path / "server" / "server.log").write_text("old")
    folder.reset()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.marker", "stack.lock"]
    folder.release()


def test_the_demo_never_empties_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    folder = StackFolder(tmp_path)
    folder.lock()
    with pytest.raises(StackError, match="not made by --demo"):
        folder.reset()
    folder.release()
    assert (tmp_path / "thesis.tex").read_text() == "years of work"
