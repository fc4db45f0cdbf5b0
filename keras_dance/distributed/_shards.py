"""The output of a dataset job: Parquet shards that appear whole or not at all.

Layout of ``out``::

    settings.json          what produced the maps (checked before resuming)
    maps/part-<h>-<n>.parquet   one shard per batch of inputs: n records; h hashes their ids
    errors.jsonl           {"id", "reason"} per input that failed in the latest run
    _errors/…              error shards while a run is going (merged into errors.jsonl)

A shard is written under a hidden name (``.tmp-…``) and renamed into place, so readers
(ours, pandas, Spark, Ray, Beam: all skip names starting with "." or "_") never see a
half-written file. Its name is a function of its ids, so a batch that an engine retries
after a worker died rewrites the same file instead of adding a duplicate.
"""

import hashlib
import json
import os

import numpy as np

from keras_dance._files import atomic_stream

MAPS = "maps"
ERRORS = "_errors"
ERRORS_FILE = "errors.jsonl"
SETTINGS = "settings.json"
DECOY_COLUMNS = ("num_decoys", "feasible_fraction", "mean_perturbation")


def _pyarrow():
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa, pq


class Output:
    """An output directory (a local path or a ``pyarrow.fs`` URI such as ``gs://…``)."""

    def __init__(self, out):
        from pyarrow import fs

        self.uri = str(out)
        if "://" in self.uri:
            self.fs, self.root = fs.FileSystem.from_uri(self.uri)
        else:
            self.fs, self.root = fs.LocalFileSystem(), os.path.abspath(self.uri)

    def __reduce__(self):  # engines ship it to workers as its URI
        return Output, (self.uri,)

    def path(self, *parts):
        return "/".join((self.root,) + parts)

    def _listing(self, directory):
        from pyarrow import fs

        selector = fs.FileSelector(self.path(directory), allow_not_found=True)
        return [info for info in self.fs.get_file_info(selector)
                if info.type == fs.FileType.File]

    def shard_paths(self, directory=MAPS):
        return sorted(info.path for info in self._listing(directory)
                      if not info.base_name.startswith((".", "_"))
                      and info.base_name.endswith(".parquet"))

    def create(self):
        """Creates the directories shards go to (a writer may be the first)."""
        self.fs.create_dir(self.path(MAPS), recursive=True)
        self.fs.create_dir(self.path(ERRORS), recursive=True)

    def prepare(self):
        """Creates the directories and removes what a killed run left: temporary files
        and the error shards of an unfinished run (those inputs are tried again)."""
        self.fs.create_dir(self.path(MAPS), recursive=True)
        for info in self._listing(MAPS):
            if info.base_name.startswith(".tmp-"):
                self.fs.delete_file(info.path)
        self.fs.delete_dir_contents(self.path(ERRORS), missing_dir_ok=True)
        self.fs.create_dir(self.path(ERRORS), recursive=True)

    def _write_table(self, directory, table, ids):
        _, pq = _pyarrow()
        digest = hashlib.sha1("\n".join(sorted(ids)).encode()).hexdigest()[:20]
        final = self.path(directory, f"part-{digest}-{len(ids)}.parquet")
        with atomic_stream(self.fs, final) as stream:
            pq.write_table(table, stream)
        return final

    def write_maps(self, records):
        """One shard from ``records``: ``id``, ``target``, ``predicted``, ``map`` (B, …)
        and optionally the decoy statistics; returns its path (None when empty)."""
        pa, _ = _pyarrow()
        ids = [str(i) for i in records["id"]]
        if not ids:
            return None
        maps = np.ascontiguousarray(records["map"], dtype=np.float32)
        size = int(np.prod(maps.shape[1:]))
        offsets = np.arange(len(ids) + 1, dtype=np.int32) * size
        columns = {
            "id": pa.array(ids, pa.string()),
            "target": pa.array(np.asarray(records["target"], np.int32)),
            "predicted": pa.array(np.asarray(records["predicted"], np.int32)),
            "map": pa.ListArray.from_arrays(pa.array(offsets), pa.array(maps.reshape(-1))),
            "shape": pa.array([list(maps.shape[1:])] * len(ids), pa.list_(pa.int32())),
        }
        for name in DECOY_COLUMNS:
            if name in records:
                dtype = np.int32 if name == "num_decoys" else np.float32
                columns[name] = pa.array(np.asarray(records[name], dtype))
        return self._write_table(MAPS, pa.table(columns), ids)

    def write_errors(self, errors):
        """An error shard of ``(id, reason)`` pairs."""
        pa, _ = _pyarrow()
        if not errors:
            return None
        ids = [str(i) for i, _ in errors]
        table = pa.table({"id": pa.array(ids, pa.string()),
                          "reason": pa.array([str(r) for _, r in errors], pa.string())})
        return self._write_table(ERRORS, table, ids)

    def read(self, columns=None, directory=MAPS):
        """All shards as one ``pyarrow.Table`` (empty with no shards)."""
        pa, pq = _pyarrow()
        paths = self.shard_paths(directory)
        if not paths:
            return None
        return pa.concat_tables(
            [pq.read_table(path, columns=columns, filesystem=self.fs) for path in paths],
            promote_options="default")

    def done_ids(self):
        """The ids that already have a map."""
        table = self.read(columns=["id"])
        return set() if table is None else set(table.column("id").to_pylist())

    def finish_errors(self):
        """Merges this run's error shards into ``errors.jsonl`` (written whole, then
        renamed into place) and returns the ``(id, reason)`` pairs."""
        self.create()
        table = self.read(directory=ERRORS)
        errors = [] if table is None else sorted(
            zip(table.column("id").to_pylist(), table.column("reason").to_pylist()))
        text = "".join(json.dumps({"id": i, "reason": r}) + "\n" for i, r in errors)
        self.write_text(ERRORS_FILE, text)
        self.fs.delete_dir(self.path(ERRORS))
        return errors

    def write_text(self, name, text):
        with atomic_stream(self.fs, self.path(name)) as stream:
            stream.write(text.encode())

    def read_text(self, name):
        from pyarrow import fs

        if self.fs.get_file_info(self.path(name)).type != fs.FileType.File:
            return None
        with self.fs.open_input_stream(self.path(name)) as stream:
            return stream.read().decode()


def read_table(out):
    """Every record of an ``explain-dataset`` output as one ``pyarrow.Table``: columns
    ``id``, ``target``, ``predicted``, ``map`` (flattened float32), ``shape`` and, for
    DANCE, ``num_decoys``, ``feasible_fraction`` and ``mean_perturbation``
    (``table.to_pandas()`` gives a DataFrame).

    Raises:
        ValueError: ``out`` holds no shards.
    """
    table = Output(out).read()
    if table is None:
        raise ValueError(f"Expected `out` to hold explain-dataset results (maps/*.parquet). "
                         f"Received: out={str(out)!r} with none")
    return table


def read_maps(out):
    """The maps of an ``explain-dataset`` output: ``{id: float32 array of the input's
    shape}`` (ids are file paths, ``path#index`` for rows of a batch file, or the
    dataset's id column).

    Raises:
        ValueError: ``out`` holds no shards, or an id appears twice.
    """
    table = read_table(out)
    ids = table.column("id").to_pylist()
    flat = table.column("map").combine_chunks()
    values = flat.values.to_numpy(zero_copy_only=False)
    offsets = flat.offsets.to_numpy()
    maps = {}
    for row, (key, shape) in enumerate(zip(ids, table.column("shape").to_pylist())):
        if key in maps:
            raise ValueError(f"Expected every id once in `out`. Received: out={str(out)!r} "
                             f"with id {key!r} twice")
        maps[key] = values[offsets[row]:offsets[row + 1]].reshape(shape)
    return maps
