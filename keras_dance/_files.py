"""Writes that appear whole or not at all: write under a hidden name beside the target,
then rename it into place (a rename within one directory is atomic); on failure nothing
is left behind. One mechanism for the maps and overlays of the command line, export's
SavedModel, the callback's arrays, figures, and the dataset shards (``pyarrow.fs``,
URIs included)."""

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path


@contextlib.contextmanager
def atomic_file(path):
    """Yields a hidden path beside ``path`` (same suffix) to write; renamed onto ``path``
    when the block ends, removed if it raises."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


@contextlib.contextmanager
def atomic_stream(filesystem, path):
    """``atomic_file`` on a ``pyarrow.fs`` filesystem: yields an output stream; the file
    is moved onto ``path`` when the block ends, deleted if it raises."""
    directory, _, name = path.rpartition("/")
    temporary = f"{directory}/.tmp-{uuid.uuid4().hex}-{name}" if directory else (
        f".tmp-{uuid.uuid4().hex}-{name}")
    try:
        with filesystem.open_output_stream(temporary) as stream:
            yield stream
        filesystem.move(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            filesystem.delete_file(temporary)
        raise


@contextlib.contextmanager
def staging_directory(parent, prefix):
    """A new directory in ``parent`` (created), its name starting with ``prefix`` (hidden:
    start it with "."), to assemble files in before they are renamed into place; removed,
    with anything left in it, when the block ends."""
    Path(parent).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_directory(staging, path):
    """Moves the directory ``staging`` onto ``path``; an existing ``path`` is set aside
    first and deleted only once the new one is in place."""
    path = Path(path)
    if not path.exists():
        os.replace(staging, path)
        return
    with staging_directory(path.parent, f".{path.name}.old.") as aside:
        os.replace(path, aside / "old")
        os.replace(staging, path)
