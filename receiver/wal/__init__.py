"""Write-ahead log: spans are acknowledged once fsynced locally and stored by a drainer, so a
storage outage or a crash loses nothing that was acknowledged.

``log`` owns the segment files and the checkpoint, ``records`` their byte format,
``checkpoint`` the drain position, ``drainer`` the thread that inserts into storage, and
``service`` ties log and drainer together for ``otelhouse serve``.
"""

from otelhouse.receiver.wal.drainer import Drainer, DrainStats, Insert
from otelhouse.receiver.wal.log import DrainBatch, LogStats, WalFull, WalLocked, WriteAheadLog
from otelhouse.receiver.wal.records import CorruptRecord, WalError
from otelhouse.receiver.wal.service import WalConfig, WalService, WalStats

__all__ = [
    "CorruptRecord",
    "DrainBatch",
    "DrainStats",
    "Drainer",
    "Insert",
    "LogStats",
    "WalError",
    "WalFull",
    "WalConfig",
    "WalLocked",
    "WalService",
    "WalStats",
    "WriteAheadLog",
]
