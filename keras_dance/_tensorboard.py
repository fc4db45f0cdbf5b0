"""TensorBoard event files with TensorBoard's own writer: no TensorFlow needed, so the
callback writes the same summaries on every Keras backend.

Each summary is written as ``tf.summary``'s v2 ops write it (a tensor with the plugin's
metadata): scalars as float32, images as ``[width, height, png, …]`` strings with
TensorFlow's float-to-uint8 conversion, text as a vector of strings.
"""

import io
import time

import numpy as np
from PIL import Image
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.plugins.text import metadata as text_metadata
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util


def _png(image):
    """``(H, W, C)`` floats in [0, 1] to PNG bytes, as ``tf.image.convert_image_dtype``
    (scale by 255.5, saturate, truncate) and ``tf.image.encode_png`` would."""
    pixels = np.clip(np.asarray(image, np.float32) * 255.5, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, "PNG")
    return buffer.getvalue()


class SummaryWriter:
    """Appends summaries to one event file in ``log_dir`` (created if missing)."""

    def __init__(self, log_dir):
        self._writer = EventFileWriter(str(log_dir))

    def _write(self, tag, step, metadata, tensor):
        value = summary_pb2.Summary.Value(tag=tag, metadata=metadata,
                                          tensor=tensor_util.make_tensor_proto(tensor))
        self._writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(step),
                                               summary=summary_pb2.Summary(value=[value])))

    def scalar(self, tag, value, step):
        self._write(tag, step, scalar_metadata.create_summary_metadata(None, None),
                    np.float32(value))

    def image(self, tag, images, step, max_outputs):
        """``images``: ``(B, H, W, C)`` floats in [0, 1], C in {1, 3}."""
        images = np.asarray(images)[:max_outputs]
        height, width = images.shape[1:3]
        encoded = [str(width).encode(), str(height).encode()] + [_png(i) for i in images]
        self._write(tag, step, image_metadata.create_summary_metadata(None, None),
                    np.array(encoded, dtype=object))

    def text(self, tag, lines, step):
        self._write(tag, step, text_metadata.create_summary_metadata(None, None),
                    np.array([line.encode() for line in lines], dtype=object))

    def flush(self):
        self._writer.flush()

    def close(self):
        self._writer.close()
