"""Dataset scale: in-process ``explain`` against each engine, one run, side by side.

The shipped digits model with DANCE (``conv2``, the default patch and steps) over
``--count`` held-out digits written as one ``.npy`` batch file. With the same total cores
(this machine's):

- in-process: ``kd.Explainer(...).explain`` on the whole array, after one warm-up call
  (the compiled function traced), all cores in one process;
- local: ``kd.distributed.explain_files(engine="local")`` (this process; reads the
  file, validates every input, writes Parquet shards);
- ray: 2 actors (local instance), each with half the cores;
- beam: the DirectRunner with 2 worker processes, each with half the cores.

For each: wall time of the whole call; start-up (the call's start to the first shard
written, less one shard's warm time); warm throughput (inputs written after the first
shard over the time from the first shard to the last, from the shards' modification
times) and its ratio to in-process (target: overhead ≤ 20 %, i.e. ratio ≥ 0.8); peak
resident memory per worker process. Run (about 10 minutes on 2 CPU cores):
    .venv/bin/python benchmarks/bench_distributed.py [--count 256] [--out FILE.md]

GPU: ``kd.ray.explain_dataset(..., num_gpus=1)`` places one actor per GPU; no GPU
figure is recorded here (see docs/quality.md, "Dataset scale").
"""

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import keras_dance as kd  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SECTION = "distributed"


def shard_times(out):
    """``[(modification time, rows)]`` of the shards, in order of writing."""
    shards = sorted((path.stat().st_mtime, int(path.stem.rsplit("-", 1)[-1]))
                    for path in (Path(out) / "maps").glob("part-*.parquet"))
    return shards


def run_engine(engine, pattern, spec, out, per_shard, workers):
    shutil.rmtree(out, ignore_errors=True)
    start = time.time()
    summary = kd.distributed.explain_files(pattern, spec, out, engine=engine,
                                           workers=workers, inputs_per_shard=per_shard,
                                           progress=False)
    wall = time.time() - start
    shards = shard_times(out)
    first, last = shards[0][0], shards[-1][0]
    after = sum(rows for _, rows in shards[1:])
    warm = after / (last - first) if last > first else float("nan")
    startup = first - start - shards[0][1] / warm
    return dict(engine=engine, wall=wall, startup=startup, warm=warm,
                peak=max(summary.workers.values(), default=float("nan")),
                workers=len(summary.workers), explained=summary.explained)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=256)
    parser.add_argument("--per_shard", type=int, default=16)
    parser.add_argument("--engines", default="local,ray,beam")
    parser.add_argument("--out", default=None, help="write the table as a section of "
                        "this markdown file (docs/quality.md)")
    args = parser.parse_args()

    x = kd.datasets.load_digits()[2][:args.count]
    settings = dict(method="gradient", decoys=kd.DecoyConfig(layer="conv2"))
    model_path = ROOT / "saved_models" / "digits_cnn.keras"
    work = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    np.save(work / "digits.npy", x)
    cores = os.cpu_count()

    explainer = kd.Explainer(kd.datasets.load_digits_model(), **settings)
    explainer.explain(x[:explainer.inputs_per_pass])  # warm-up: the trace
    start = time.time()
    explainer.explain(x)
    in_process = len(x) / (time.time() - start)
    rows = [dict(engine="in-process explain", wall=len(x) / in_process, startup=0.0,
                 warm=in_process, peak=_peak_rss(), workers=1, explained=len(x))]
    print(f"in-process: {in_process:.2f} inputs/s ({cores} cores, one process)")
    spec = kd.distributed.ExplainerSpec(model_path, **settings)
    for engine in args.engines.split(","):
        workers = 1 if engine == "local" else 2
        row = run_engine(engine, str(work / "digits.npy"), spec, work / f"out_{engine}",
                         args.per_shard, workers)
        rows.append(row)
        print(f"{engine}: {row['warm']:.2f} inputs/s warm, start-up {row['startup']:.1f} s, "
              f"wall {row['wall']:.1f} s, peak {row['peak']:.0f} MB per worker")
    shutil.rmtree(work, ignore_errors=True)

    lines = [
        f"One run of `benchmarks/bench_distributed.py` on {platform.machine()} with "
        f"{cores} CPU cores (no GPU): the shipped digits model, DANCE (conv2, default "
        f"patch 4 and 60 steps, {explainer.decoys.num_decoys} decoys per input) over "
        f"{len(x)} held-out digits in one `.npy` file, {args.per_shard} inputs per "
        "shard. Every engine uses all cores: in-process and local in one process, Ray "
        "and Beam as 2 worker processes with half the cores each.",
        "",
        "| run | workers | start-up (s) | warm inputs/s | vs in-process | wall (s) | "
        "peak MB per worker |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['engine']} | {row['workers']} | {row['startup']:.1f} | "
            f"{row['warm']:.2f} | {row['warm'] / in_process:.2f}× | {row['wall']:.1f} | "
            f"{row['peak']:.0f} |")
    print("\n".join(lines))
    if args.out:
        from _sections import write_section

        write_section(args.out, SECTION, lines)


def _peak_rss():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


if __name__ == "__main__":
    main()
