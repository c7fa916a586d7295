"""Checkpoint stores: where an actor keeps the snapshots it restores from after a crash.

A store is anything with ``save(key, state, version)`` and ``load(key)``: the
`CheckpointStore` protocol. Two implementations ship here, and they differ in
*what they survive*:

- `DirectoryStore` on a local disk: reachable from that machine; survives restarts of
  the actor on that machine.
- `DirectoryStore` on a shared filesystem (NFS, `/dbfs`, a Databricks volume):
  reachable from every machine that mounts it; survives restarts anywhere, and the end
  of the Ray cluster.
- `RayKVStore`: reachable from every node of the Ray cluster; survives restarts
  anywhere and the loss of any worker node, for as long as the Ray cluster lives.

Both write a snapshot atomically (a reader sees the old snapshot or the new one, never
half of one) and keep the last ``keep`` versions of each key. ``load`` returns the
newest snapshot that reads back intact.

Snapshots are pickled: only point a store at a location you trust as much as your code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import struct
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from patterns._checks import check_int, check_name, describe
from patterns.errors import PatternError

__all__ = ["Checkpoint", "CheckpointStore", "DirectoryStore", "RayKVStore", "StoreNotSharedError"]

# The file that identifies a DirectoryStore's directory. Key folders are percent-quoted
# names, in which "%" is always followed by two hex digits: no key can be named this.
_MARKER_NAME = "%store-id"


class StoreNotSharedError(PatternError):
    """A `DirectoryStore` reached a process where its path is another directory.

    Raised when the store is unpickled (an actor starting on another host): its path
    does not hold the marker file the store wrote where it was made, so snapshots saved
    on one host would not be found on the other.

    Examples:
        >>> import pickle, shutil, tempfile
        >>> path = tempfile.mkdtemp()
        >>> blob = pickle.dumps(DirectoryStore(path))
        >>> shutil.rmtree(path)  # as if the path were another host's own disk
        >>> try:
        ...     pickle.loads(blob)
        ... except StoreNotSharedError as error:
        ...     print("refused:", "not the same directory" in str(error))
        refused: True
    """


_log = logging.getLogger(__name__)

# Snapshot framing: magic, CRC-32 and length of the payload, then the pickle. A reader
# can tell an intact snapshot from a damaged one without trusting the unpickler.
_MAGIC = b"RAPCKPT1"
_HEADER = struct.Struct(">IQ")
_VERSION_DIGITS = 20  # zero-padded versions sort as text in the order they sort as ints
_SUFFIX = ".ckpt"
_TMP_PREFIX = ".tmp-"
_STALE_TMP_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One snapshot read back from a store.

    Attributes:
        version: The version the snapshot was saved under (higher is newer).
        state: The saved state, as it was passed to ``save``.

    Examples:
        >>> Checkpoint(version=3, state={"value": 7})
        Checkpoint(version=3, state={'value': 7})
    """

    version: int
    state: Any


@runtime_checkable
class CheckpointStore(Protocol):
    """What an actor needs from a place that keeps its snapshots.

    ``save`` must be atomic (after a crash, ``load`` returns a whole snapshot) and must
    be durable when it returns, since an actor acknowledges work only after ``save``
    returns. Any object with these two methods is a store; ``isinstance(obj,
    CheckpointStore)`` checks the method names.

    Examples:
        >>> import tempfile
        >>> isinstance(DirectoryStore(tempfile.mkdtemp()), CheckpointStore)
        True
    """

    def save(self, key: str, state: Any, version: int) -> None:
        """Store ``state`` as version ``version`` of ``key``."""
        ...

    def load(self, key: str) -> Checkpoint | None:
        """Return the newest intact snapshot of ``key``, or None if there is none."""
        ...


def _encode(state: Any) -> bytes:
    payload = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    return _MAGIC + _HEADER.pack(zlib.crc32(payload), len(payload)) + payload


def _decode(blob: bytes) -> Any:
    """Return the state in ``blob``; raise ValueError if it is not an intact snapshot."""
    start = len(_MAGIC) + _HEADER.size
    if len(blob) < start or not blob.startswith(_MAGIC):
        msg = "not a checkpoint (bad header)"
        raise ValueError(msg)
    crc, length = _HEADER.unpack_from(blob, len(_MAGIC))
    payload = blob[start:]
    if len(payload) != length or zlib.crc32(payload) != crc:
        msg = "damaged checkpoint (length or checksum mismatch)"
        raise ValueError(msg)
    return pickle.loads(payload)


def _newest_intact(
    versions: list[int], read: Callable[[int], bytes | None], where: str
) -> Checkpoint | None:
    """Walk versions newest first and return the first one that decodes."""
    for version in sorted(versions, reverse=True):
        blob = read(version)
        if blob is None:  # pruned by a concurrent saver between listing and reading
            continue
        try:
            return Checkpoint(version=version, state=_decode(blob))
        except Exception as exc:  # a damaged snapshot must not hide an older good one
            _log.warning("skipping checkpoint version %d of %s: %s", version, where, exc)
    return None


class DirectoryStore:
    """A checkpoint store in a directory: atomic, versioned files, the last ``keep`` kept.

    Each key gets a sub-directory holding one file per version. A save writes a
    temporary file, flushes and fsyncs it, renames it into place (atomic on POSIX) and
    fsyncs the directory, so a crash at any moment leaves the previous snapshot
    readable and never a half-written one under a real name.

    The guarantee depends on where the directory is: on a local disk, only actors
    restarted on the same machine find their snapshots; on a filesystem every node
    mounts (NFS, ``/dbfs``, a Databricks volume), any node does, and the snapshots
    outlive the Ray cluster itself.

    Args:
        path: An existing directory (or one to create with ``create=True``).
        keep: How many of the newest versions of each key to keep (at least 1).
        create: Create ``path`` (and its parents) if it does not exist.
        fsync: Flush to the disk before a save returns. Turning it off makes saves
            faster and survives process crashes, but not power loss or kernel crashes.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``path`` does not exist (and ``create`` is false) or is not a
            directory, or ``keep < 1``.

    Examples:
        >>> import tempfile
        >>> store = DirectoryStore(tempfile.mkdtemp(), keep=2)
        >>> for version in (1, 2, 3):
        ...     store.save("hits", {"value": version * 10}, version)
        >>> store.load("hits")
        Checkpoint(version=3, state={'value': 30})
        >>> store.versions("hits")
        [2, 3]
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        keep: int = 3,
        create: bool = False,
        fsync: bool = True,
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            msg = f"'path' must be a str or os.PathLike, got {describe(path)}"
            raise TypeError(msg)
        check_int("keep", keep, minimum=1)
        root = Path(path).expanduser()
        if not root.exists():
            if not create:
                msg = (
                    f"'path' must be an existing directory, got {str(path)!r} which does not "
                    "exist (pass create=True to create it)"
                )
                raise ValueError(msg)
            root.mkdir(parents=True, exist_ok=True)
        if not root.is_dir():
            msg = f"'path' must be a directory, got {str(path)!r} which is not one"
            raise ValueError(msg)
        self._root = root.resolve()
        self._keep = keep
        self._fsync = bool(fsync)
        self._marker = self._read_or_write_marker()

    def _read_or_write_marker(self) -> str | None:
        """The directory's identity: a random id in a file no key's folder can be named."""
        marker = self._root / _MARKER_NAME
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                return marker.read_text(encoding="ascii").strip() or None
            except OSError:
                return None
        except OSError:  # a read-only directory: nothing to compare against later
            return None
        identity = uuid.uuid4().hex
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(identity)
        return identity

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Unpickled in another process, perhaps on another host: a path that is a
        # different directory there (a local disk, not a shared mount) would make every
        # restore there start from nothing, silently. Refuse it here instead.
        self.__dict__.update(state)
        expected = state.get("_marker")
        if expected is None:
            return
        try:
            found = (self._root / _MARKER_NAME).read_text(encoding="ascii").strip()
        except OSError:
            found = None
        if found != expected:
            import socket

            msg = (
                f"DirectoryStore {str(self._root)!r} is not the same directory on host "
                f"{socket.gethostname()!r} as where the store was made ("
                + ("it does not exist here" if not self._root.is_dir() else "its marker differs")
                + "): snapshots saved on one host would not be found on another. Use a "
                "path every node mounts (NFS, /dbfs, a Databricks volume) or RayKVStore"
            )
            raise StoreNotSharedError(msg)

    @property
    def path(self) -> Path:
        """The store's directory (absolute)."""
        return self._root

    @property
    def keep(self) -> int:
        """How many versions of each key are kept."""
        return self._keep

    def __repr__(self) -> str:
        return f"DirectoryStore({str(self._root)!r}, keep={self._keep})"

    def _key_dir(self, key: str) -> Path:
        # Quoting makes any key a single safe file name ("a/b" -> "a%2Fb").
        return self._root / quote(check_name("key", key), safe="")

    def save(self, key: str, state: Any, version: int) -> None:
        """Write ``state`` as version ``version`` of ``key``, atomically and durably.

        Saving a version that already exists replaces it; afterwards only the ``keep``
        highest versions remain.

        Args:
            key: Which snapshot series to write to.
            state: Any picklable object.
            version: A non-negative int; ``load`` returns the highest one.

        Raises:
            TypeError: If ``key`` is not a str or ``version`` not an int.
            ValueError: If ``key`` is empty or ``version`` negative.

        Examples:
            >>> import tempfile
            >>> store = DirectoryStore(tempfile.mkdtemp())
            >>> store.save("model", [1, 2, 3], version=1)
            >>> store.load("model").state
            [1, 2, 3]
        """
        directory = self._key_dir(key)
        check_int("version", version, minimum=0)
        blob = _encode(state)  # pickling errors surface before anything is written
        directory.mkdir(exist_ok=True)
        final = directory / f"{version:0{_VERSION_DIGITS}d}{_SUFFIX}"
        tmp = directory / f"{_TMP_PREFIX}{version}-{uuid.uuid4().hex}"
        try:
            with open(tmp, "xb") as f:
                f.write(blob)
                f.flush()
                if self._fsync:
                    os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        if self._fsync:
            # The rename is durable only once the directory entry is on disk.
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self._prune(directory)

    def _prune(self, directory: Path) -> None:
        versions = self._list(directory)
        for version in sorted(versions)[: -self._keep]:
            with contextlib.suppress(FileNotFoundError):  # a concurrent saver got there first
                (directory / f"{version:0{_VERSION_DIGITS}d}{_SUFFIX}").unlink()
        # Temporary files of writers that crashed long ago; recent ones may be live.
        cutoff = time.time() - _STALE_TMP_SECONDS
        for tmp in directory.glob(f"{_TMP_PREFIX}*"):
            with contextlib.suppress(FileNotFoundError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()

    @staticmethod
    def _list(directory: Path) -> list[int]:
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
        return [
            int(name[: -len(_SUFFIX)])
            for name in names
            if name.endswith(_SUFFIX) and name[: -len(_SUFFIX)].isdigit()
        ]

    def load(self, key: str) -> Checkpoint | None:
        """Return the newest intact snapshot of ``key``, or None if there is none.

        Args:
            key: Which snapshot series to read.

        Returns:
            The newest snapshot that reads back intact (damaged files are skipped with a
            logged warning), or None.

        Raises:
            TypeError: If ``key`` is not a str.
            ValueError: If ``key`` is empty.

        Examples:
            >>> import tempfile
            >>> DirectoryStore(tempfile.mkdtemp()).load("nothing-yet") is None
            True
        """
        directory = self._key_dir(key)

        def read(version: int) -> bytes | None:
            try:
                return (directory / f"{version:0{_VERSION_DIGITS}d}{_SUFFIX}").read_bytes()
            except FileNotFoundError:
                return None

        return _newest_intact(self._list(directory), read, str(directory))

    def versions(self, key: str) -> list[int]:
        """Return the versions of ``key`` present in the store, oldest first.

        Args:
            key: Which snapshot series to list.

        Returns:
            The stored versions in increasing order (empty if none).

        Examples:
            >>> import tempfile
            >>> DirectoryStore(tempfile.mkdtemp()).versions("hits")
            []
        """
        return sorted(self._list(self._key_dir(key)))

    def delete(self, key: str) -> None:
        """Remove every snapshot of ``key`` (no error if there is none).

        Args:
            key: Which snapshot series to remove.

        Examples:
            >>> import tempfile
            >>> store = DirectoryStore(tempfile.mkdtemp())
            >>> store.save("hits", 1, 1)
            >>> store.delete("hits")
            >>> store.load("hits") is None
            True
        """
        directory = self._key_dir(key)
        if not directory.exists():
            return
        for entry in directory.iterdir():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        with contextlib.suppress(OSError):  # not empty if a saver raced us: leave it
            directory.rmdir()


def _internal_kv(store: RayKVStore, method: str) -> Any:
    # Ray has no public key-value API. ray.experimental.internal_kv is the GCS
    # key-value store that Ray's own libraries (Serve, Tune, the job manager) keep
    # their metadata in: it is reachable from every node and lives in the head's GCS,
    # which is exactly the guarantee RayKVStore promises. Imported lazily and in one
    # place so that a change in Ray breaks one function.
    from ray.experimental import internal_kv

    if not internal_kv._internal_kv_initialized():
        msg = f"{store!r}: {method} needs a connected Ray cluster: call ray.init() first"
        raise PatternError(msg)
    return internal_kv


class RayKVStore:
    """A checkpoint store in the Ray cluster's own key-value store (the GCS).

    Every node of the cluster reaches it, and it lives on the head node, so snapshots
    survive actor restarts on any node and the loss of any worker node (on
    Ray-on-Spark: any Spark executor). They live as long as the Ray cluster: shutting
    the cluster down (or losing the head, unless Ray's GCS fault tolerance with an
    external Redis is configured) loses them. For snapshots that must outlive the
    cluster, use a `DirectoryStore` on a shared filesystem.

    Each version is one key-value entry, written in one atomic put; the last ``keep``
    are kept. The GCS holds everything in the head's memory: keep snapshots small
    (kilobytes to a few megabytes).

    Args:
        namespace: The key-value namespace to use, so that several applications can
            share a cluster without seeing each other's snapshots.
        keep: How many of the newest versions of each key to keep (at least 1).

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``namespace`` is empty or ``keep < 1``.

    Examples:
        >>> import uuid
        >>> store = RayKVStore(namespace=f"doctest-{uuid.uuid4().hex}", keep=2)
        >>> store.save("hits", {"value": 5}, version=1)
        >>> store.load("hits")
        Checkpoint(version=1, state={'value': 5})
        >>> store.delete("hits")
    """

    def __init__(self, *, namespace: str = "ray-actor-patterns", keep: int = 3) -> None:
        check_name("namespace", namespace)
        check_int("keep", keep, minimum=1)
        self._namespace = namespace
        self._keep = keep

    @property
    def namespace(self) -> str:
        """The key-value namespace the snapshots live in."""
        return self._namespace

    @property
    def keep(self) -> int:
        """How many versions of each key are kept."""
        return self._keep

    def __repr__(self) -> str:
        return f"RayKVStore(namespace={self._namespace!r}, keep={self._keep})"

    @staticmethod
    def _prefix(key: str) -> str:
        return f"checkpoint/{quote(check_name('key', key), safe='')}/"

    def _versions(self, kv: Any, prefix: str) -> list[int]:
        names = kv._internal_kv_list(prefix, namespace=self._namespace)
        suffixes = (name.decode()[len(prefix) :] for name in names)
        return [int(s) for s in suffixes if s.isdigit()]

    def save(self, key: str, state: Any, version: int) -> None:
        """Write ``state`` as version ``version`` of ``key`` (one atomic put).

        Args:
            key: Which snapshot series to write to.
            state: Any picklable object.
            version: A non-negative int; ``load`` returns the highest one.

        Raises:
            TypeError: If ``key`` is not a str or ``version`` not an int.
            ValueError: If ``key`` is empty or ``version`` negative.
            PatternError: If Ray is not connected.

        Examples:
            >>> import uuid
            >>> store = RayKVStore(namespace=f"doctest-{uuid.uuid4().hex}")
            >>> store.save("weights", [0.5, 0.25], version=7)
            >>> store.load("weights").version
            7
            >>> store.delete("weights")
        """
        prefix = self._prefix(key)
        check_int("version", version, minimum=0)
        blob = _encode(state)
        kv = _internal_kv(self, "save")
        name = f"{prefix}{version:0{_VERSION_DIGITS}d}"
        kv._internal_kv_put(name, blob, overwrite=True, namespace=self._namespace)
        for old in sorted(self._versions(kv, prefix))[: -self._keep]:
            kv._internal_kv_del(f"{prefix}{old:0{_VERSION_DIGITS}d}", namespace=self._namespace)

    def load(self, key: str) -> Checkpoint | None:
        """Return the newest intact snapshot of ``key``, or None if there is none.

        Args:
            key: Which snapshot series to read.

        Returns:
            The newest snapshot that reads back intact, or None.

        Raises:
            TypeError: If ``key`` is not a str.
            ValueError: If ``key`` is empty.
            PatternError: If Ray is not connected.

        Examples:
            >>> RayKVStore(namespace="doctest-empty").load("nothing-yet") is None
            True
        """
        prefix = self._prefix(key)
        kv = _internal_kv(self, "load")

        def read(version: int) -> bytes | None:
            name = f"{prefix}{version:0{_VERSION_DIGITS}d}"
            blob: bytes | None = kv._internal_kv_get(name, namespace=self._namespace)
            return blob

        return _newest_intact(self._versions(kv, prefix), read, f"{self._namespace}:{prefix}")

    def versions(self, key: str) -> list[int]:
        """Return the versions of ``key`` present in the store, oldest first.

        Args:
            key: Which snapshot series to list.

        Returns:
            The stored versions in increasing order (empty if none).

        Examples:
            >>> RayKVStore(namespace="doctest-empty").versions("hits")
            []
        """
        return sorted(self._versions(_internal_kv(self, "versions"), self._prefix(key)))

    def delete(self, key: str) -> None:
        """Remove every snapshot of ``key`` (no error if there is none).

        Args:
            key: Which snapshot series to remove.

        Examples:
            >>> RayKVStore(namespace="doctest-empty").delete("hits")
        """
        prefix = self._prefix(key)
        kv = _internal_kv(self, "delete")
        kv._internal_kv_del(prefix, del_by_prefix=True, namespace=self._namespace)
