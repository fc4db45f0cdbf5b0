"""Marked sections of a generated report: each benchmark script owns one.

A section is the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``; a script
rewrites its own section and keeps everything else, so the quality report can be built
by several scripts (benchmarks/quality.py, dance_sweep.py, text_quality.py).
"""

import os
import re
from pathlib import Path


def markers(name):
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def marked_sections(text):
    """Every marked section of ``text``, markers included, in order."""
    return [m.group(0) for m in re.finditer(r"<!-- (\w+):start -->.*?<!-- \1:end -->", text,
                                            flags=re.S)]


def write_section(path, name, lines):
    """Replaces section ``name`` of ``path`` by ``lines`` (markers added; appended when
    absent), atomically."""
    path = Path(path)
    start, end = markers(name)
    text = path.read_text() if path.exists() else ""
    section = "\n".join([start, *lines, end])
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
