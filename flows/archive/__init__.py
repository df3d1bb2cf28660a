"""The archive of a cleanup: every deleted row, kept where the user chose, and restored.

``writer`` archives each batch in its deleting transaction, durably, before
the delete commits; ``store`` is where (a folder, a filesystem block);
``codec`` turns rows into JSON lines and back; ``index`` says what an
archive holds; ``restore`` puts rows back through Prefect's own tables;
``prune`` removes archives past their age.
"""

from __future__ import annotations

from flows.archive.index import ArchiveIndex
from flows.archive.store import Folder, FsspecStore, Store, open_store
from flows.archive.writer import ArchiveWriter, active, archived

__all__ = [
    "ArchiveIndex",
    "ArchiveWriter",
    "Folder",
    "FsspecStore",
    "Store",
    "active",
    "archived",
    "open_store",
]
