"""An image folder is listed once per process (data/folder_memo.py), and its index once for all processes (on disk,
data/folder_index.py), while none of its folders changes; what they give is what a fresh listing gives: the split's
index, the files under the folder and the data's identity."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pytest

from simclr_core.config import DataConfig
from simclr_core.data import folder_memo, locate
from simclr_core.data.encoded import open_encoded
from simclr_core.data.feed import data_identity, data_identity_later

OLD = time.time() - 3600           # an hour ago: past RACY_MTIME_S, so a listing is kept


@pytest.fixture(autouse=True)
def fresh_memo(tmp_path, monkeypatch):
    """An empty memo, and a cache folder of the test's own (where folder indexes are kept)."""
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))
    folder_memo.forget()
    yield
    folder_memo.forget()


def write_folder(root: Path, counts: dict[str, dict[str, int]]) -> Path:
    """root/<split>/<class>/<i>.jpg (any bytes: nothing here decodes them), every folder's mtime an hour old."""
    for split, classes in counts.items():
        for cls, count in classes.items():
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (root / split / cls / f"{i}.jpg").write_bytes(b"x" * (i + 1))
    age(root)
    return root


def age(root: Path, when: float = OLD) -> None:
    for folder, _, _ in os.walk(root):
        os.utime(folder, (when, when))


def count_walks(monkeypatch) -> dict[str, int]:
    """Walks of the index (folder_index's, one per class folder) and of the files under a folder (locate's)."""
    calls = {"index": 0, "files": 0}
    walk = locate.walk_folders

    def counted(kind):
        def walked(*args, **kwargs):
            calls[kind] += 1
            return walk(*args, **kwargs)
        return walked
    monkeypatch.setattr("simclr_core.data.folder_index.walk_folders", counted("index"))
    monkeypatch.setattr(locate, "walk_folders", counted("files"))
    return calls


def cfg_of(root: Path) -> DataConfig:
    return DataConfig(dataset="imagefolder", data_dir=str(root), loader="stream", image_size=32)


def test_a_split_is_listed_once_while_its_folders_keep_their_mtimes(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "data", {"train": {"cat": 3, "dog": 2}, "test": {"cat": 1, "dog": 1}})
    calls = count_walks(monkeypatch)
    first = open_encoded(cfg_of(root), "train")
    walks = calls["index"]
    assert walks == 2 and calls["files"] == 0            # one walk per class folder; locating lists nothing
    again = open_encoded(cfg_of(root), "train")
    assert calls["index"] == walks and again is not first and again.paths == first.paths
    assert np.array_equal(again.labels, first.labels) and first.labels.tolist() == [0, 0, 0, 1, 1]
    again.labels[:] = 7                                          # each index owns its labels
    assert open_encoded(cfg_of(root), "train").labels.tolist() == [0, 0, 0, 1, 1]


@pytest.mark.parametrize("change", ["image added", "image removed", "class added in another split",
                                    "nested folder added"])
def test_a_change_below_the_folder_is_seen_by_the_next_index(tmp_path, change):
    root = write_folder(tmp_path / "data", {"train": {"cat": 3, "dog": 2}, "test": {"cat": 1, "dog": 1}})
    before = open_encoded(cfg_of(root), "train")
    if change == "image added":
        (root / "train" / "dog" / "new.jpg").write_bytes(b"y")
    elif change == "image removed":
        (root / "train" / "cat" / "0.jpg").unlink()
    elif change == "class added in another split":               # labels are places among all splits' classes
        (root / "test" / "ant").mkdir()
        (root / "test" / "ant" / "0.jpg").write_bytes(b"z")
    else:
        (root / "train" / "cat" / "deeper").mkdir()
        (root / "train" / "cat" / "deeper" / "0.jpg").write_bytes(b"z")
    after = open_encoded(cfg_of(root), "train")
    folder_memo.forget()
    fresh = open_encoded(cfg_of(root), "train")
    assert after.paths == fresh.paths and after.labels.tolist() == fresh.labels.tolist()
    assert (after.paths, after.labels.tolist()) != (before.paths, before.labels.tolist())


def test_a_folder_changed_within_the_racy_window_is_listed_again(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "data", {"train": {"cat": 2}})
    os.utime(root / "train" / "cat")                             # modified just now
    calls = count_walks(monkeypatch)
    open_encoded(cfg_of(root), "train")
    open_encoded(cfg_of(root), "train")
    assert calls["index"] == 2                                 # not kept: listed each time
    assert not list((tmp_path / "cache").glob("*.index.npz"))   # nor written to disk


def test_another_process_reads_the_index_from_disk_without_listing_the_folder(tmp_path):
    import subprocess
    import sys
    import textwrap

    root = write_folder(tmp_path / "data", {"train": {"cat": 3, "dog": 2}, "test": {"cat": 1, "dog": 1}})
    listed = open_encoded(cfg_of(root), "train")
    assert len(list((tmp_path / "cache").glob("imagefolder-train-*.index.npz"))) == 1
    script = textwrap.dedent(f"""
        import os
        def refuse(*args, **kwargs):
            raise AssertionError("listed the folder although its index is on disk")
        os.walk = refuse
        from simclr_core.config import DataConfig
        from simclr_core.data.encoded import open_encoded
        split = open_encoded(DataConfig(dataset="imagefolder", data_dir={str(root)!r}, loader="stream",
                                        image_size=32), "train")
        print(repr((split.paths, split.labels.tolist(), split.num_classes)))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={**os.environ, "SIMCLR_CACHE_DIR": str(tmp_path / "cache")}).stdout
    assert out.strip() == repr((listed.paths, listed.labels.tolist(), listed.num_classes))


@pytest.mark.parametrize("change", ["image added", "entry damaged"])
def test_the_index_on_disk_is_listed_again_when_stale_or_damaged(tmp_path, monkeypatch, change):
    root = write_folder(tmp_path / "data", {"train": {"cat": 3, "dog": 2}})
    open_encoded(cfg_of(root), "train")
    folder_memo.forget()                                         # as a new process
    (entry,) = (tmp_path / "cache").glob("*.index.npz")
    if change == "image added":
        (root / "train" / "dog" / "new.jpg").write_bytes(b"y")
        age(root, OLD + 60)                                      # settled again (a later mtime): kept
    else:
        entry.write_bytes(entry.read_bytes()[:100])
    calls = count_walks(monkeypatch)
    again = open_encoded(cfg_of(root), "train")
    assert calls["index"] == 2                                 # listed again
    assert len(again) == (6 if change == "image added" else 5)
    folder_memo.forget()
    calls["index"] = 0
    assert open_encoded(cfg_of(root), "train").paths == again.paths and calls["index"] == 0   # kept again


def test_the_identity_is_the_hash_of_every_file_s_name_and_size_listed_once(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "data", {"train": {"cat": 3, "dog": 2}, "test": {"cat": 1}})
    calls = count_walks(monkeypatch)
    identity = data_identity(cfg_of(root))
    # Textbook: every file under the folder (all splits), sorted, its path below their common folder and its size.
    files = sorted(str(Path(folder) / f) for folder, _, names in os.walk(root) for f in names)
    common = os.path.commonpath(files)
    digest = hashlib.sha256(b"imagefolder:train")
    for path in files:
        digest.update(f"\n{os.path.relpath(path, common)}\0{os.stat(path).st_size}".encode())
    assert identity == digest.hexdigest()[:16]
    assert data_identity(cfg_of(root)) == identity and calls["files"] == 1
    (root / "train" / "dog" / "1.jpg").write_bytes(b"longer content")        # same names, another size
    assert data_identity(cfg_of(root)) != identity


def test_the_identity_taken_beside_training_is_the_same_and_its_errors_reach_the_waiter(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "data", {"train": {"cat": 2, "dog": 1}})
    assert data_identity_later(cfg_of(root))() == data_identity(cfg_of(root))
    assert data_identity_later(DataConfig(dataset="cifar10"))() is None        # a named dataset: its name says it

    def broken(cfg):
        raise RuntimeError("disk gone")
    monkeypatch.setattr("simclr_core.data.feed.data_identity", broken)
    wait = data_identity_later(cfg_of(root))
    with pytest.raises(RuntimeError, match="disk gone"):
        wait()


def test_processes_opening_a_folder_at_once_list_it_once_between_them(tmp_path):
    import subprocess
    import sys
    import textwrap

    root = write_folder(tmp_path / "data", {"train": {"cat": 3, "dog": 2}})
    script = textwrap.dedent(f"""
        import os, time
        walks, real_walk = [], os.walk
        def slow_walk(top, *args, **kwargs):
            walks.append(top)
            time.sleep(1.0)                    # a slow file system: the other process arrives meanwhile
            return real_walk(top, *args, **kwargs)
        os.walk = slow_walk
        from simclr_core.config import DataConfig
        from simclr_core.data.encoded import open_encoded
        split = open_encoded(DataConfig(dataset="imagefolder", data_dir={str(root)!r}, loader="stream",
                                        image_size=32), "train")
        print(len(walks), len(split))
    """)
    env = {**os.environ, "SIMCLR_CACHE_DIR": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outs = sorted(p.communicate(timeout=120)[0].split() for p in procs)
    assert all(p.returncode == 0 for p in procs)
    assert outs == [["0", "5"], ["2", "5"]]        # one listed both class folders, the other read what it wrote
