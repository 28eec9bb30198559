"""Instance discovery: each running brummer announces its MCP endpoint in a small JSON file.

The directory is ``$BRUMMER_STATE_DIR/instances`` when that is set (tests use it),
else ``$XDG_RUNTIME_DIR/brummer/instances``, else ``<tempdir>/brummer-<uid>/instances``.
It is created with mode 0700; each file ``<id>.json`` (mode 0600) holds ``id``, ``name``,
``directory``, ``port``, ``pid``, ``started_at`` and is written atomically (temp file, fsync,
rename) only after the server listens, and removed when it stops.

Readers skip files that are not valid instance files and files whose pid is dead, and
delete both when asked to clean (``list_instances(clean=True)``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import psutil

from brummer._state import state_dir
from brummer.contracts import ThreadSafety, contract
from brummer.errors import BrummerError, ErrorCode

__all__ = [
    "InstanceInfo",
    "instances_dir",
    "list_instances",
    "new_instance_id",
    "pid_alive",
    "read_instance",
    "remove_instance",
    "write_instance",
]

_LOG = logging.getLogger("brummer.mcp")
_COMPONENT = "mcp"
_SUFFIX = ".json"


@contract(ThreadSafety.TS)
@attrs.frozen
class InstanceInfo:
    """One running brummer: where its MCP server listens and which project it serves.

    Thread safety: TS (frozen value object).
    """

    id: str
    name: str
    directory: str
    port: int
    pid: int
    started_at: datetime
    host: str = "127.0.0.1"

    @property
    @contract(ThreadSafety.TS)
    def url(self) -> str:
        """The MCP endpoint, ``http://<host>:<port>/mcp``.

        Thread safety: TS.
        """
        return f"http://{self.host}:{self.port}/mcp"

    @contract(ThreadSafety.TS)
    def to_json(self) -> dict[str, Any]:
        """The file's JSON object.

        Thread safety: TS. Pure.
        """
        return {
            "id": self.id,
            "name": self.name,
            "directory": self.directory,
            "host": self.host,
            "port": self.port,
            "pid": self.pid,
            "started_at": self.started_at.isoformat(),
        }


@contract(ThreadSafety.TS)
def instances_dir() -> Path:
    """The per-user directory that holds the instance files (not created here).

    Thread safety: TS. Reads the environment at each call.
    """
    return state_dir() / "instances"


@contract(ThreadSafety.TS)
def new_instance_id(directory: str | os.PathLike[str]) -> str:
    """A fresh id: the project directory's name and 16 random hex digits.

    Thread safety: TS.
    """
    base = "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(directory).name)
    return f"{base or 'brummer'}-{secrets.token_hex(8)}"


@contract(ThreadSafety.TS)
def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (and is not a zombie).

    Thread safety: TS.
    """
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _bad_file(path: Path, why: str) -> BrummerError:
    return BrummerError(
        _COMPONENT,
        ErrorCode.INVALID_ARGUMENT,
        f"{path} is not a brummer instance file: {why}",
        hint="delete the file; running brummers rewrite theirs when they start",
        context={"path": str(path)},
    )


@contract(ThreadSafety.TS)
def read_instance(path: str | os.PathLike[str]) -> InstanceInfo:
    """Read and validate one instance file.

    Thread safety: TS.

    Raises:
        BrummerError: INVALID_ARGUMENT when the file is not a valid instance file;
            NOT_FOUND when it does not exist.
    """
    file = Path(path)
    try:
        raw = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise BrummerError(
            _COMPONENT,
            ErrorCode.NOT_FOUND,
            f"{file} does not exist",
            hint="the instance has stopped; list instances again",
            cause=exc,
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad_file(file, str(exc)) from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise _bad_file(file, f"not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise _bad_file(file, "not a JSON object")
    try:
        info = InstanceInfo(
            id=_field(data, "id", str),
            name=_field(data, "name", str),
            directory=_field(data, "directory", str),
            port=_field(data, "port", int),
            pid=_field(data, "pid", int),
            started_at=datetime.fromisoformat(_field(data, "started_at", str)),
            host=data.get("host", "127.0.0.1") if isinstance(data.get("host"), str) else "",
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad_file(file, str(exc)) from exc
    if not 0 < info.port < 65536:
        raise _bad_file(file, f"port {info.port} out of range")
    if info.host not in ("127.0.0.1", "localhost", "::1"):
        raise _bad_file(file, f"host {info.host!r} is not local")
    if info.started_at.tzinfo is None:
        raise _bad_file(file, "started_at has no time zone")
    return info


def _field(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"{key} must be {kind.__name__}, not {type(value).__name__}")
    return value


@contract(ThreadSafety.TS)
def write_instance(info: InstanceInfo, directory: str | os.PathLike[str] | None = None) -> Path:
    """Write the instance file atomically (temp file, fsync, rename); return its path.

    Thread safety: TS. Creates the directory with mode 0700; the file has mode 0600.

    Raises:
        BrummerError: PERMISSION when the directory cannot be written.
    """
    folder = Path(directory) if directory is not None else instances_dir()
    target = folder / f"{info.id}{_SUFFIX}"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{info.id}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(info.to_json(), out)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise BrummerError(
            _COMPONENT,
            ErrorCode.PERMISSION,
            f"cannot write the instance file {target}: {exc}",
            hint="check the permissions of the directory, or set BRUMMER_STATE_DIR",
            cause=exc,
        ) from exc
    return target


@contract(ThreadSafety.TS)
def remove_instance(instance_id: str, directory: str | os.PathLike[str] | None = None) -> None:
    """Delete the instance file; a file already gone is fine.

    Thread safety: TS.
    """
    folder = Path(directory) if directory is not None else instances_dir()
    with contextlib.suppress(FileNotFoundError):
        (folder / f"{instance_id}{_SUFFIX}").unlink()


@contract(ThreadSafety.TS)
def list_instances(
    directory: str | os.PathLike[str] | None = None, *, clean: bool = True
) -> list[InstanceInfo]:
    """Every live instance, oldest first. Invalid files and dead instances are skipped.

    Thread safety: TS.

    Args:
        directory: where to look (default :func:`instances_dir`).
        clean: also delete the files that were skipped.
    """
    folder = Path(directory) if directory is not None else instances_dir()
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix == _SUFFIX)
    except FileNotFoundError:
        return []
    found: list[InstanceInfo] = []
    for file in files:
        try:
            info = read_instance(file)
        except BrummerError as err:
            if err.code is ErrorCode.NOT_FOUND:
                continue
            _LOG.warning("skipping %s", err)
        else:
            if pid_alive(info.pid):
                found.append(info)
                continue
            _LOG.info("instance %s (pid %d) is gone", info.id, info.pid)
        if clean:
            with contextlib.suppress(OSError):
                file.unlink()
    found.sort(key=lambda i: i.started_at)
    return found
