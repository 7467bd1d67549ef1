"""Saves survive a power cut: compute/atomic.py must fsync the new file before the rename
and the directory after it. The real os.fsync runs; the test only watches what it is
called on and when (which file or directory, what the target name held at that moment)."""
import os
import stat

from mnist_viz.compute import atomic


def test_save_syncs_the_file_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    """Guards against dropping either fsync: without the first a crash after the rename can
    leave an empty or partial checkpoint under the final name; without the second the
    rename itself can be lost, bringing back the old file."""
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old contents")
    data = b"new contents, longer than the old ones"
    seen = []
    real_fsync = os.fsync

    def watching_fsync(fd):
        st = os.fstat(fd)
        seen.append(dict(is_dir=stat.S_ISDIR(st.st_mode), ino=st.st_ino, size=st.st_size,
                         target_ino=os.stat(target).st_ino))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", watching_fsync)
    atomic.write_bytes(target, data)
    assert target.read_bytes() == data
    new_ino, dir_ino = os.stat(target).st_ino, os.stat(tmp_path).st_ino
    files = [s for s in seen if not s["is_dir"]]
    dirs = [s for s in seen if s["is_dir"]]
    # The new file, whole, synced while the name still held the old file (before the rename).
    assert any(s["ino"] == new_ino and s["size"] == len(data) and s["target_ino"] != new_ino for s in files), seen
    # The directory, synced once the name held the new file (after the rename).
    assert any(s["ino"] == dir_ino and s["target_ino"] == new_ino for s in dirs), seen
