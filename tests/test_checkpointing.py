"""Checkpoint stores: atomic writes, retention, concurrent savers, clear errors.

The directory-store tests need no Ray. The RayKVStore tests use the shared cluster;
the restore-after-restart behaviour of the actors is in test_counters_faults.py.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from patterns import Checkpoint, CheckpointStore, DirectoryStore, RayKVStore
from patterns._checkpointer import Checkpointer, check_store
from patterns.errors import PatternError

ROOT = Path(__file__).resolve().parents[1]


def _run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- DirectoryStore: basics -------------------------------------------------------------


def test_directory_store_round_trip(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    assert store.load("hits") is None
    store.save("hits", {"value": 1, "nested": [1, 2]}, 1)
    assert store.load("hits") == Checkpoint(version=1, state={"value": 1, "nested": [1, 2]})
    assert isinstance(store, CheckpointStore)
    assert store.path == tmp_path.resolve()


def test_directory_store_keeps_the_last_k_versions(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, keep=3)
    for version in range(1, 11):
        store.save("hits", version * 10, version)
    assert store.versions("hits") == [8, 9, 10]
    assert store.load("hits") == Checkpoint(10, 100)
    # Versions are ordered as numbers, not as text, and the highest wins.
    store.save("other", "v9", 9)
    store.save("other", "v10", 10)
    store.save("other", "v2", 2)
    assert store.load("other") == Checkpoint(10, "v10")


def test_directory_store_keys_are_independent_and_safe(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, keep=1)
    store.save("ns/hits", "a", 1)
    store.save("ns/misses", "b", 1)
    store.save("../escape", "c", 1)
    assert store.load("ns/hits").state == "a"
    assert store.load("ns/misses").state == "b"
    assert store.load("../escape").state == "c"
    # Every key is one directory directly under the store: nothing escapes it.
    assert all(p.parent == tmp_path for p in tmp_path.iterdir())
    store.delete("ns/hits")
    assert store.load("ns/hits") is None
    assert store.load("ns/misses").state == "b"
    store.delete("never-saved")


def test_directory_store_create(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    store = DirectoryStore(target, create=True)
    store.save("k", 1, 1)
    assert target.is_dir()
    assert DirectoryStore(str(target)).load("k").state == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"path": 3}, TypeError, r"'path' must be a str or os.PathLike, got 3 \(int\)"),
        ({"path": "/no/such/dir/rap"}, ValueError, r"'path' must be an existing directory.*create"),
        ({"keep": 0}, ValueError, r"'keep' must be an int >= 1, got 0"),
        ({"keep": True}, TypeError, r"'keep' must be an int, got True \(bool\)"),
        ({"keep": 2.0}, TypeError, r"'keep' must be an int, got 2.0 \(float\)"),
    ],
)
def test_directory_store_bad_arguments(
    tmp_path: Path, kwargs: dict, error: type[Exception], match: str
) -> None:
    kwargs = {"path": tmp_path, **kwargs}
    with pytest.raises(error, match=match):
        DirectoryStore(**kwargs)


def test_directory_store_path_must_be_a_directory(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="'path' must be a directory"):
        DirectoryStore(a_file)


@pytest.mark.parametrize(
    ("key", "version", "error", "match"),
    [
        ("", 1, ValueError, "'key' must be a non-empty str"),
        (3, 1, TypeError, r"'key' must be a str, got 3 \(int\)"),
        ("k", -1, ValueError, r"'version' must be an int >= 0, got -1"),
        ("k", "1", TypeError, r"'version' must be an int, got '1' \(str\)"),
    ],
)
def test_save_bad_arguments(
    tmp_path: Path, key: object, version: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        DirectoryStore(tmp_path).save(key, {}, version)  # type: ignore[arg-type]


def test_store_argument_check(tmp_path: Path) -> None:
    assert check_store(None) is None
    store = DirectoryStore(tmp_path)
    assert check_store(store) is store
    with pytest.raises(TypeError, match=r"got the path '/tmp/x'.*DirectoryStore\('/tmp/x'\)"):
        check_store("/tmp/x")
    with pytest.raises(TypeError, match=r"'store' must be a CheckpointStore .*got 5 \(int\)"):
        check_store(5)


# --- DirectoryStore: crashes in the middle of a write ------------------------------------


def test_failed_write_leaves_previous_snapshot(tmp_path: Path, monkeypatch) -> None:
    store = DirectoryStore(tmp_path)
    store.save("hits", "old", 1)

    def broken_fsync(fd: int) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk on fire"):
        store.save("hits", "new", 2)
    monkeypatch.undo()
    assert store.load("hits") == Checkpoint(1, "old")
    assert [p.name for p in (tmp_path / "hits").iterdir()] == [f"{1:020d}.ckpt"]


def test_unpicklable_state_changes_nothing(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    store.save("hits", "old", 1)
    with pytest.raises(Exception):  # noqa: B017 - the pickling error, whatever its type
        store.save("hits", threading.Lock(), 2)
    assert store.load("hits") == Checkpoint(1, "old")


def test_process_killed_mid_write_leaves_previous_snapshot(tmp_path: Path) -> None:
    """A real crash: the saving process is SIGKILLed after writing, before the rename."""
    code = f"""
        import os, signal
        from patterns import DirectoryStore
        store = DirectoryStore({str(tmp_path)!r})
        store.save("hits", {{"value": 1}}, 1)
        real_fsync = os.fsync
        def die(fd):
            real_fsync(fd)  # the new snapshot's bytes are on disk under a temp name ...
            os.kill(os.getpid(), signal.SIGKILL)  # ... and the process dies before renaming
        os.fsync = die
        store.save("hits", {{"value": 2, "payload": "x" * 1_000_000}}, 2)
    """
    result = _run_python(code)
    assert result.returncode == -signal.SIGKILL, result.stderr
    store = DirectoryStore(tmp_path)
    assert store.load("hits") == Checkpoint(1, {"value": 1})
    assert store.versions("hits") == [1]
    leftovers = [p for p in (tmp_path / "hits").iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1  # the half-finished write, invisible to load
    # Stale temporary files are removed by a later save once they are old.
    old = time.time() - 2 * 3600
    os.utime(leftovers[0], (old, old))
    store.save("hits", {"value": 3}, 3)
    assert not leftovers[0].exists()


def test_damaged_newest_snapshot_falls_back_to_previous(tmp_path: Path, caplog) -> None:
    store = DirectoryStore(tmp_path)
    store.save("hits", "v1", 1)
    store.save("hits", "v2", 2)
    newest = tmp_path / "hits" / f"{2:020d}.ckpt"
    newest.write_bytes(newest.read_bytes()[:-3])  # e.g. a disk that lost the tail
    with caplog.at_level(logging.WARNING, logger="patterns.checkpointing"):
        assert store.load("hits") == Checkpoint(1, "v1")
    assert "skipping checkpoint version 2" in caplog.text


# --- DirectoryStore: concurrent savers ---------------------------------------------------


def test_concurrent_savers_never_expose_a_partial_snapshot(tmp_path: Path) -> None:
    """Four processes save interleaved versions of one key while this one keeps loading."""
    writers, per_writer, keep = 4, 25, 3
    code = f"""
        import sys
        from patterns import DirectoryStore
        store = DirectoryStore(sys.argv[1], keep={keep})
        writer, writers, count = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        for i in range(count):
            version = 1 + writer + i * writers
            state = {{"version": version, "blob": bytes([version % 256]) * 50_000}}
            store.save("shared", state, version)
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-c", textwrap.dedent(code), str(tmp_path)]
    procs = [
        subprocess.Popen(
            [*argv, str(w), str(writers), str(per_writer)],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    store = DirectoryStore(tmp_path, keep=keep)
    loads = 0
    try:
        while any(p.poll() is None for p in procs):
            found = store.load("shared")
            if found is not None:
                loads += 1
                # Whole snapshots only: the state matches the version it was saved under.
                assert found.state["version"] == found.version
                assert found.state["blob"] == bytes([found.version % 256]) * 50_000
    finally:
        for p in procs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
    total = writers * per_writer
    assert store.load("shared").version == total
    assert store.versions("shared") == list(range(total - keep + 1, total + 1))
    assert loads > 0


def test_concurrent_savers_threads(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, keep=2)
    errors: list[BaseException] = []

    def save(start: int) -> None:
        try:
            for version in range(start, 200, 4):
                store.save("k", version, version)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert store.versions("k") == [198, 199]
    assert store.load("k") == Checkpoint(199, 199)


# --- the actor-side helper ---------------------------------------------------------------


def test_checkpointer_saves_every_n_changes(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, keep=10)
    checkpointer = Checkpointer(store, "k", every=3)
    assert checkpointer.restore() is None
    for i in range(1, 8):
        checkpointer.changed(lambda i=i: {"n": i})
    assert store.versions("k") == [1, 2]  # after changes 3 and 6
    assert store.load("k").state == {"n": 6}
    again = Checkpointer(store, "k", every=1)
    assert again.restore() == Checkpoint(2, {"n": 6})
    assert again.save({"n": 7}) == 3  # versions continue after a restore
    assert Checkpointer(None, "k", every=1).save({"n": 1}) is None


# --- RayKVStore --------------------------------------------------------------------------


def test_kv_store_bad_arguments() -> None:
    with pytest.raises(TypeError, match=r"'namespace' must be a str, got 1 \(int\)"):
        RayKVStore(namespace=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'namespace' must be a non-empty str"):
        RayKVStore(namespace="")
    with pytest.raises(ValueError, match=r"'keep' must be an int >= 1, got 0"):
        RayKVStore(keep=0)


def test_kv_store_round_trip_and_retention(ray_cluster: dict) -> None:
    store = RayKVStore(namespace=f"test-{uuid.uuid4().hex}", keep=2)
    assert store.load("hits") is None
    for version in (1, 2, 3, 10):
        store.save("hits", {"value": version}, version)
    assert store.versions("hits") == [3, 10]
    assert store.load("hits") == Checkpoint(10, {"value": 10})
    store.save("hits/shard-0-of-2", "other", 1)
    assert store.load("hits").version == 10  # a key is not a prefix of another's data
    store.delete("hits")
    assert store.load("hits") is None
    assert store.load("hits/shard-0-of-2") == Checkpoint(1, "other")
    store.delete("hits/shard-0-of-2")


def test_kv_store_is_reachable_from_workers(ray_cluster: dict) -> None:
    import ray

    store = RayKVStore(namespace=f"test-{uuid.uuid4().hex}", keep=3)

    @ray.remote(num_cpus=0.5)
    def save_many(store: RayKVStore, start: int) -> None:
        for version in range(start, 40, 4):
            store.save("shared", {"version": version}, version)

    # Four concurrent savers on the cluster's workers, then read back on the driver.
    ray.get([save_many.remote(store, s) for s in range(4)], timeout=120)
    assert store.versions("shared") == [37, 38, 39]
    found = store.load("shared")
    assert found == Checkpoint(39, {"version": 39})
    store.delete("shared")


def test_kv_store_needs_a_connected_ray(monkeypatch) -> None:
    from ray.experimental import internal_kv

    monkeypatch.setattr(internal_kv, "_internal_kv_initialized", lambda: False)
    with pytest.raises(
        PatternError, match=r"RayKVStore\(namespace=.*\): load needs a connected Ray"
    ):
        RayKVStore().load("k")


def test_a_directory_store_refuses_a_path_that_is_another_directory_where_it_arrives(
    tmp_path: Path,
) -> None:
    """An actor on another host unpickles the store: when its path there is not the
    directory the store was made on (a local disk, not a shared mount), it says so."""
    import pickle

    from patterns import StoreNotSharedError

    store = DirectoryStore(tmp_path / "shared", create=True)
    store.save("hits", 1, 1)
    copy = pickle.loads(pickle.dumps(store))  # the same directory: accepted
    assert copy.load("hits").state == 1
    blob = pickle.dumps(store)
    (tmp_path / "shared" / "%store-id").unlink()  # as another host's own /tmp would be
    with pytest.raises(StoreNotSharedError, match=r"is not the same directory on host .*marker"):
        pickle.loads(blob)
    other = tmp_path / "gone"
    store_elsewhere = DirectoryStore(other, create=True)
    blob = pickle.dumps(store_elsewhere)
    import shutil

    shutil.rmtree(other)
    with pytest.raises(StoreNotSharedError, match=r"it does not exist here.*RayKVStore"):
        pickle.loads(blob)
