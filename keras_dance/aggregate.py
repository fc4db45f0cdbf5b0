"""Reducers over the decoy axis: ``keras_dance.decoys.aggregate``, under its older name."""

from keras_dance.decoys.aggregate import (AGGREGATIONS, Reducer, mean_aggregate,  # noqa: F401
                                          patch_range_aggregate, range_aggregate)

__all__ = ["AGGREGATIONS", "Reducer", "mean_aggregate", "patch_range_aggregate",
           "range_aggregate"]
