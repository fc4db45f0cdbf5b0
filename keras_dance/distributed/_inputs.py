"""Inputs named by files: listed on the driver, read in the workers."""

import glob as globbing
import os

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
SUFFIXES = IMAGE_SUFFIXES + (".npy",)


class InputError(ValueError):
    """An input that cannot be read as the model's input (recorded, not raised, by jobs)."""


def read_image(path, channels):
    """An image file as float32 ``(H, W, channels)`` in [0, 1] (grey for 1 channel)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            array = np.asarray(image, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise InputError(f"cannot read image {path}: {error}") from error
    return array[..., None] if array.ndim == 2 else array


def list_inputs(patterns, input_shape):
    """``[(id, path, index)]`` for the files matching ``patterns`` (glob patterns or
    paths; a list or one string), sorted, each once. An image file is one input (``id``
    its path, ``index`` -1); an ``.npy`` file holding one input likewise; an ``.npy``
    batch ``(N, *input_shape)`` gives ids ``path#0`` … ``path#N-1``. Only the ``.npy``
    header is read here; an unreadable file stays one item, so that its error is
    recorded when a worker reads it.

    Raises:
        ValueError: no pattern matches a file of a known kind.
    """
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    paths = sorted({path for pattern in patterns
                    for path in (globbing.glob(str(pattern), recursive=True)
                                 if globbing.has_magic(str(pattern)) else [str(pattern)])
                    if os.path.isfile(path)})
    known = [path for path in paths if path.lower().endswith(SUFFIXES)]
    if not known:
        raise ValueError(
            f"Expected input files ({', '.join(SUFFIXES)}) matching `inputs`. Received: "
            f"inputs={[str(p) for p in patterns]!r}, matching "
            f"{len(paths)} files{' of other kinds' if paths else ''}")
    items = []
    for path in known:
        count = _npy_rows(path, input_shape) if path.lower().endswith(".npy") else None
        if count is None:
            items.append((path, path, -1))
        else:
            items.extend((f"{path}#{i}", path, i) for i in range(count))
    return items


def _npy_rows(path, input_shape):
    """The number of inputs in an ``.npy`` batch file; None for one input (or a file a
    worker will report as unreadable)."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception:
        return None
    if getattr(array, "ndim", 0) == len(input_shape) + 1:
        return int(array.shape[0])
    return None


def read_item(path, index, input_shape):
    """The input an item names, as a numpy array (checked by the batch explainer)."""
    if not path.lower().endswith(".npy"):
        return read_image(path, input_shape[-1] if len(input_shape) == 3 else 1)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        return np.array(array if index < 0 else array[index])
    except Exception as error:
        raise InputError(f"cannot read {path}: {error}") from error


def read_batch(path, input_shape):
    """A whole file as a float32 batch ``(N, *input_shape)``: an image is one input, an
    ``.npy`` file one input or a batch (the command line's ``explain``).

    Raises:
        InputError: an unreadable file, non-numeric values or a shape that is neither one
            input nor a batch of them.
    """
    input_shape = tuple(input_shape)
    if not str(path).lower().endswith(".npy"):
        array = read_image(path, input_shape[-1] if len(input_shape) == 3 else 1)
        if array.shape != input_shape:
            raise InputError(
                f"image {path} has shape {array.shape}; the model expects {input_shape}")
        return array[None]
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as error:
        raise InputError(f"cannot read {path}: {error}") from error
    if array.dtype.kind not in "biuf":
        raise InputError(f"{path} holds {array.dtype} values; expected numbers")
    if array.ndim == len(input_shape):
        array = array[None]
    if array.ndim != len(input_shape) + 1:
        raise InputError(f"{path} has shape {array.shape}; expected one input {input_shape} "
                         f"or a batch (N, *{input_shape})")
    return array.astype(np.float32)
