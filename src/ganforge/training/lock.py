"""An advisory lock on a folder ganforge writes (a run directory, a ``generate --out`` folder).

The lock is ``FOLDER/.ganforge.lock``, held with ``flock`` for as long as the writing process lives, and
holding a JSON line with the owner's PID, host and start time so that a refused second writer can say who
holds it. The kernel drops an ``flock`` when its process dies (even by SIGKILL), so a lock file left by a
dead process is stale by construction: the next writer takes it over and says so.

Advisory means ganforge processes respect it; nothing stops ``rm -rf``. On platforms without ``fcntl``
(Windows) the lock degrades to the PID check alone.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganforge.errors import RunDirError

LOCK_FILE = ".ganforge.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class FolderLock:
    """Held from ``acquire`` to ``release`` (or the end of a ``with`` block, or the process)."""

    def __init__(self, folder: Path, fd: int) -> None:
        self.folder, self.fd = folder, fd

    @property
    def path(self) -> Path:
        return self.folder / LOCK_FILE

    def release(self) -> None:
        if self.fd < 0:
            return
        # Unlink while still holding the lock: a waiter that opened the old file sees on its own
        # acquire that the path now names another (or no) file and retries (see ``acquire``).
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)  # closing drops the flock
        self.fd = -1

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def read_owner(folder: Path) -> dict[str, Any]:
    """The owner record of FOLDER's lock file ({} when absent or unreadable)."""
    try:
        data = json.loads((Path(folder) / LOCK_FILE).read_text(encoding="utf-8", errors="replace")[:4096])
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists but is someone else's (or a nonsense value: assume alive, refuse safely)
    return True


def _describe(owner: dict[str, Any]) -> str:
    pid, host, since = owner.get("pid", "?"), owner.get("host", "?"), owner.get("since", "?")
    return f"PID {pid} on host {host} (since {since}, running `{str(owner.get('command', '?'))[:80]}`)"


def acquire(folder: Path, command: str, log: Callable[[str], None] = print) -> FolderLock:
    """Lock FOLDER (which must exist) for writing, or raise RunDirError naming the owner.

    A lock file whose owner is gone (killed, crashed, rebooted host) is taken over, with a message.
    """
    folder = Path(folder)
    path = folder / LOCK_FILE
    for _ in range(20):  # retried only when a releasing owner unlinks the file under us
        stale = read_owner(folder) if path.exists() else {}
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    owner = read_owner(folder)
                    raise RunDirError(
                        f"{str(folder)!r} is being written by {_describe(owner)}. Wait for it to finish, or stop "
                        "that process; two writers would mix their files (nothing was changed)."
                    ) from None
            elif stale and stale.get("host") == socket.gethostname() and _pid_alive(int(stale.get("pid", -1))):
                raise RunDirError(f"{str(folder)!r} is being written by {_describe(stale)}; wait for it to finish.")
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous owner released (and unlinked) between our open and our flock
                os.close(fd)
                continue
        except BaseException:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
            raise
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        if stale and (stale.get("pid"), stale.get("host")) != (record["pid"], record["host"]):
            log(f"took over a stale lock on {folder} left by {_describe(stale)}, which is no longer running.")
        return FolderLock(folder, fd)
    raise RunDirError(f"could not lock {str(folder)!r}: other processes keep taking it. Retry in a moment.")
