"""Writes appear whole or not at all (keras_dance._files): one mechanism for every writer."""

import pytest
from pyarrow import fs

from keras_dance._files import atomic_file, atomic_stream, replace_directory, staging_directory


def test_atomic_file_renames_on_success_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "maps.npz"
    with atomic_file(target) as temporary:
        assert temporary.parent == tmp_path and temporary.name.startswith(".")
        temporary.write_text("whole")
    assert target.read_text() == "whole"
    with pytest.raises(RuntimeError):
        with atomic_file(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "whole" and sorted(tmp_path.iterdir()) == [target]


def test_atomic_stream_on_a_pyarrow_filesystem(tmp_path):
    local = fs.LocalFileSystem()
    path = f"{tmp_path}/settings.json"
    with atomic_stream(local, path) as stream:
        stream.write(b"{}")
    with pytest.raises(RuntimeError):
        with atomic_stream(local, path) as stream:
            stream.write(b"{half")
            raise RuntimeError("killed")
    assert (tmp_path / "settings.json").read_bytes() == b"{}"
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]


def test_staging_directory_and_replace_directory(tmp_path):
    target = tmp_path / "model" / "1"
    for version in ("first", "second"):
        with staging_directory(target.parent, ".1.") as staging:
            (staging / "saved_model.pb").write_text(version)
            replace_directory(staging, target)
        assert (target / "saved_model.pb").read_text() == version
        assert [p.name for p in target.parent.iterdir()] == ["1"]  # nothing set aside left
    with pytest.raises(RuntimeError):
        with staging_directory(target.parent, ".1.") as staging:
            (staging / "saved_model.pb").write_text("half")
            raise RuntimeError("killed")
    assert (target / "saved_model.pb").read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["1"]
