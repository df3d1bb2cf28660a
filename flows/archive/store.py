"""Where archives go: a local folder, or a Prefect filesystem block.

A batch's rows must be durably stored before its delete commits, and an
object store cannot append. So every batch is one file of its own, written
whole or not at all: in a folder, to a temporary name, flushed and
``fsync``-ed, renamed into place and the folder ``fsync``-ed; through a
``RemoteFileSystem`` block (S3, GCS, Azure through fsspec), one object put,
which those stores make visible whole. A ``LocalFileSystem`` block is a
folder. A file that could not be written raises ``ArchiveError``, and the
transaction waiting on it rolls back.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Protocol

from flows.errors import ArchiveError


class Store(Protocol):
    """Files under one root, by relative path with ``/`` separators."""

    @property
    def where(self) -> str:
        """What a person reads: a folder path or ``block remote-file-system/name``."""
        ...

    async def write(self, path: str, data: bytes) -> None:
        """Store ``data`` at ``path``, durably, whole or not at all."""
        ...

    async def read(self, path: str) -> bytes: ...

    async def files(self, prefix: str = "") -> list[str]:
        """Every file under ``prefix``, sorted; empty when there is none."""
        ...

    async def remove(self, prefix: str) -> None:
        """Remove everything under ``prefix``."""
        ...


class Folder:
    """A local folder; created when first written to."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    @property
    def where(self) -> str:
        return str(self.root)

    async def write(self, path: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, self.root / path, data)

    @staticmethod
    def _write(target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.partial")
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
        # The rename itself is durable only once the folder's entry is on disk.
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    async def read(self, path: str) -> bytes:
        return await asyncio.to_thread((self.root / path).read_bytes)

    async def files(self, prefix: str = "") -> list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return []
        return sorted(
            found.relative_to(self.root).as_posix()
            for found in base.rglob("*")
            if found.is_file() and not found.name.startswith(".")
        )

    async def remove(self, prefix: str) -> None:
        import shutil

        target = self.root / prefix
        if target.is_dir():
            await asyncio.to_thread(shutil.rmtree, target)
        elif target.exists():
            target.unlink()


class FsspecStore:
    """A ``RemoteFileSystem`` block's filesystem under its ``basepath``."""

    def __init__(self, name: str, filesystem: Any, basepath: str) -> None:
        self.name = name
        self.filesystem = filesystem
        self.basepath = basepath.rstrip("/")

    @property
    def where(self) -> str:
        return f"block {self.name} ({self.basepath})"

    def _full(self, path: str) -> str:
        return f"{self.basepath}/{path}" if path else self.basepath

    async def write(self, path: str, data: bytes) -> None:
        await asyncio.to_thread(self.filesystem.pipe_file, self._full(path), data)

    async def read(self, path: str) -> bytes:
        return bytes(await asyncio.to_thread(self.filesystem.cat_file, self._full(path)))

    async def files(self, prefix: str = "") -> list[str]:
        base = self._full(prefix)
        if not await asyncio.to_thread(self.filesystem.exists, base):
            return []
        found = await asyncio.to_thread(self.filesystem.find, base)
        root = self.filesystem._strip_protocol(self.basepath).rstrip("/") + "/"
        return sorted(
            str(item)[len(root) :] if str(item).startswith(root) else str(item) for item in found
        )

    async def remove(self, prefix: str) -> None:
        await asyncio.to_thread(self.filesystem.rm, self._full(prefix), recursive=True)


async def open_store(folder: str | None, block: str | None) -> Store:
    """The store a config names: a block by ``block-type/name``, else a folder."""
    if not block:
        if not folder:
            raise ArchiveError("no archive folder or block is configured", "set archive.folder")
        return Folder(folder)
    from prefect.blocks.core import Block
    from prefect.filesystems import LocalFileSystem, RemoteFileSystem

    try:
        loaded: Any = await Block.aload(block)
    except Exception as exc:
        raise ArchiveError(
            f"the archive block {block!r} could not be loaded ({type(exc).__name__}: {exc})",
            "create it (for example with `prefect block create remote-file-system`) or fix "
            "archive.block, written as block-type/name",
        ) from exc
    if isinstance(loaded, LocalFileSystem):
        if not loaded.basepath:
            raise ArchiveError(f"the block {block!r} has no basepath", "set its basepath")
        return Folder(loaded.basepath)
    if isinstance(loaded, RemoteFileSystem):
        return FsspecStore(block, loaded.filesystem, loaded.basepath)
    raise ArchiveError(
        f"the block {block!r} is a {type(loaded).__name__}, not a filesystem",
        "name a local-file-system or remote-file-system block in archive.block",
    )
