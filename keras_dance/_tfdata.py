"""``tf.data`` input, where TensorFlow is the product: a dataset of batches is read batch
by batch. TensorFlow is never imported here: a dataset exists only if it already is."""

import sys


def is_dataset(value):
    """Whether ``value`` is a ``tf.data.Dataset``."""
    tensorflow = sys.modules.get("tensorflow")
    return tensorflow is not None and isinstance(value, tensorflow.data.Dataset)


def batches(dataset):
    """The inputs of each element of a finite ``dataset`` (``(x, y)`` tuples give ``x``).

    Raises:
        ValueError: the dataset is infinite (e.g. ``.repeat()``): it is refused up front.
        TypeError: an element is a dict.
    """
    check_finite(dataset)
    for element in dataset:
        if isinstance(element, (tuple, list)):
            yield element[0]
        elif isinstance(element, dict):
            raise TypeError(
                "Expected dataset elements to be tensors or (x, y) tuples. Received: a dict")
        else:
            yield element


def check_finite(dataset):
    """Refuses a dataset of infinite cardinality up front (explain reads every batch)."""
    tensorflow = sys.modules["tensorflow"]
    if dataset.cardinality() == tensorflow.data.INFINITE_CARDINALITY:
        raise ValueError(
            "Expected a finite `x` dataset (explain reads every batch). Received: a "
            "tf.data.Dataset of infinite cardinality (e.g. `.repeat()`); take the "
            "batches to explain with `.take(n)`")
