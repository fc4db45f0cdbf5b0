"""Pieces several backend modules of the seam share."""

import numpy as np


def interpolation(size_in, size_out):
    """``(size_out, size_in)`` weights of corner-aligned linear interpolation."""
    weights = np.zeros((size_out, size_in), np.float64)
    where = (np.arange(size_out) * ((size_in - 1) / (size_out - 1)) if size_out > 1
             else np.zeros(1))
    low = np.minimum(np.floor(where).astype(int), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    fraction = where - low
    weights[np.arange(size_out), low] += 1.0 - fraction
    weights[np.arange(size_out), high] += fraction
    return weights.astype(np.float32)


def chunk_loop(compile, map_chunks, fn, per_pass, input_specs, output_specs, jit_compile,  # noqa: A002
               variables):
    """``compile_chunks`` as one compiled function with the chunks' loop inside
    (``map_chunks``), batch-polymorphic through ``input_specs``: TensorFlow traces it once;
    PyTorch runs it eagerly."""
    chunk = compile(fn, jit_compile=jit_compile, variables=variables)

    def run(*inputs):
        return map_chunks(chunk, list(inputs), per_pass, output_specs)

    return compile(run, input_specs=input_specs, variables=variables)
