"""Patches sliding over the spatial axes: ``keras_dance._patches``, under its public name."""

from keras_dance._patches import (MAX_AUTO_PATCHES, auto_patch, patch_grid, patch_masks,  # noqa: F401
                                  patch_starts, per_axis)

__all__ = ["MAX_AUTO_PATCHES", "auto_patch", "patch_grid", "patch_masks", "patch_starts",
           "per_axis"]
