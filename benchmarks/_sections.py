"""Marked sections of a generated report (each benchmark script owns one), and the
mean ± standard error cells every report prints.

A section is the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``; a script
rewrites its own section and keeps everything else, so the quality report can be built
by several scripts (benchmarks/quality.py, dance_sweep.py, text_quality.py).
"""

import os
import re
from pathlib import Path

import numpy as np


def mean_se(values):
    """``(mean, standard error)`` of the finite values (NaN when there are too few)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return float(values.mean()), float(se)


def fmt(values):
    """``"mean ± se"`` to three decimals (the mean alone for one value)."""
    mean, se = mean_se(values)
    return f"{mean:.3f} ± {se:.3f}" if np.isfinite(se) else f"{mean:.3f}"


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


def median_time(fn, repeats):
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call
    (tracing and first-call allocation)."""
    import time

    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))

