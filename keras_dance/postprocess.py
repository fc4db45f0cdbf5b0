"""The DANCE paper's display recipe for saliency maps."""

import numpy as np


def postprocess(maps, percentile=95.0, channel_axis=-1, reduce_channels=None):
    """Absolute value, max over channels, winsorise, scale to [0, 1] — per sample.

    ``S = min(max_c |E|, q) / q`` with ``q`` the ``percentile``-th percentile of
    ``max_c |E|`` over the sample's positions (DANCE paper, after Smilkov et al.). A map
    that is zero everywhere stays zero.

    Args:
        maps: array ``(B, *spatial, C)`` (or ``(B, *features)`` with
            ``reduce_channels=False``).
        percentile: winsorising percentile in (0, 100]. Defaults to 95.
        channel_axis: the channel axis. Defaults to -1.
        reduce_channels: take the max over ``channel_axis``. Defaults to True for inputs
            of rank >= 3 (images, sequences) and False for feature vectors.

    Returns:
        float32 array ``(B, *spatial)`` (channels reduced) in [0, 1].

    Example:
        >>> import numpy as np, keras_dance as kd
        >>> shown = kd.postprocess(np.random.default_rng(0).normal(size=(2, 8, 8, 3)))
        >>> shown.shape, float(shown.max())
        ((2, 8, 8), 1.0)
    """
    from keras_dance._validation import as_maps, check_non_empty

    # numeric, a batch axis, finite (NaN maps are refused), at least one value
    array = check_non_empty(as_maps(maps), "maps")
    if (isinstance(percentile, bool) or not isinstance(percentile, (int, float, np.number))
            or not 0 < percentile <= 100):
        raise ValueError(
            f"Expected `percentile` in (0, 100]. Received: percentile={percentile!r}"
        )
    array = np.abs(array)
    if reduce_channels is None:
        reduce_channels = array.ndim >= 3
    if not isinstance(reduce_channels, (bool, np.bool_)):
        raise TypeError(
            f"Expected `reduce_channels` to be a bool or None. Received: "
            f"reduce_channels={reduce_channels!r}"
        )
    if reduce_channels and not (isinstance(channel_axis, (int, np.integer))
                                and not isinstance(channel_axis, bool)
                                and -array.ndim <= channel_axis < array.ndim
                                and channel_axis % array.ndim != 0):
        raise ValueError(
            f"Expected `channel_axis` to be a non-batch axis of `maps` (rank {array.ndim}). "
            f"Received: channel_axis={channel_axis!r}"
        )
    if reduce_channels:
        array = array.max(axis=channel_axis)
    flat = array.reshape(len(array), -1)
    top = np.percentile(flat, percentile, axis=1)
    top = np.where(top > 0, top, flat.max(axis=1))
    scale = np.where(top > 0, top, 1.0).reshape((-1,) + (1,) * (array.ndim - 1))
    return np.clip(array / scale, 0.0, 1.0).astype(np.float32)
