"""The drainer's checkpoint: how far the log is in storage, and the range being inserted.

Written by atomic rename after an fsync, so a crash leaves either the old or the new file.
``inflight_end`` is recorded *before* an insert: after a crash the drainer re-inserts exactly
that range with the same deduplication token, so the storage drops the repeat whether or not
the first attempt landed. Without it the replay could group records differently, and a
differently-tokened superset of an already stored range would be stored twice.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

FILE_NAME = "checkpoint.json"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    wal_id: str
    segment: int
    offset: int
    inflight_end: int | None = None

    def at(self, segment: int, offset: int) -> Checkpoint:
        return replace(self, segment=segment, offset=offset, inflight_end=None)


def load_checkpoint(directory: Path) -> Checkpoint | None:
    path = directory / FILE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ValueError(f"{path} is not a valid checkpoint ({exc})") from exc
    return Checkpoint(
        wal_id=str(data["wal_id"]),
        segment=int(data["segment"]),
        offset=int(data["offset"]),
        inflight_end=None if data.get("inflight_end") is None else int(data["inflight_end"]),
    )


def save_checkpoint(directory: Path, checkpoint: Checkpoint) -> None:
    path = directory / FILE_NAME
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, json.dumps(asdict(checkpoint)).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    """Make a file creation, rename or removal in ``directory`` itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
