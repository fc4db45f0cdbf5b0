"""The explainer's compiled functions, built once per explainer through the backend seam.

- ``indexed``: ``(inputs, targets) -> (maps, targets, feasible fraction, mean
  perturbation)`` for class-index targets (-1: the predicted class), batch-polymorphic,
  chunked over inputs under the memory knob inside the compiled function.
- ``for_score_function``: maps for a user score function (a few kept, by identity).
- ``decoys``: ``(inputs, first pair) -> (decoys, found)`` for a static number of pairs.
"""

from keras import ops

from keras_dance import backend
from keras_dance._targets import CallableTargets, IndexTargets, predicted_classes


class CompiledFunctions:
    """Builds and keeps the compiled functions of one explainer.

    Args:
        explainer: the ``Explainer`` (its model view, method, decoy maps, token reduction
            and budget are read when a function is traced).
    """

    #: Score functions whose compiled maps are kept (least recently built dropped first).
    MAX_SCORE_FUNCTIONS = 8

    def __init__(self, explainer):
        self.explainer = explainer
        self._score_functions = {}
        self._decoy_functions = {}
        self.indexed = self.build_indexed()

    def maps_for_chunk(self, x, targets, fuse=None):
        """Maps ``(b, …)`` plus per-input decoy statistics (fraction feasible, mean change)."""
        explainer = self.explainer
        view = explainer.model_view
        z = view.space(x)
        if explainer.dance is not None:
            maps, feasible, change = explainer.dance(z, targets, fuse=fuse)
        else:
            batch = ops.shape(x)[0]
            maps = explainer.method(z, explainer.forward, targets, explainer.budget)
            feasible, change = ops.ones((batch,)), ops.zeros((batch,))
        return view.reduce_tokens(maps, x, explainer.token_reduction), feasible, change

    def chunk(self, fuse=None):
        """The uncompiled ``(inputs, targets) -> (maps, targets, feasible fraction, mean
        perturbation)`` for one chunk of at most ``inputs_per_pass`` inputs."""
        explainer = self.explainer

        def chunk(x, targets):
            if explainer.num_classes is not None:
                # The forward pass for the predicted class only when some target asks.
                targets = ops.cond(
                    ops.any(targets < 0),
                    lambda: ops.where(targets < 0, predicted_classes(
                        explainer.forward(explainer.model_view.space(x))), targets),
                    lambda: targets)
            maps, feasible, change = self.maps_for_chunk(x, IndexTargets(targets), fuse)
            return maps, targets, feasible, change

        return chunk

    def build_indexed(self, jit_compile=None, fuse=None):
        """The compiled ``(inputs, targets)`` function; ``fuse=False`` keeps the decoy
        solver's kernels plain (a graph any TensorFlow Serving build runs)."""
        explainer = self.explainer
        jit_compile = explainer.jit_compile if jit_compile is None else jit_compile
        variables = explainer.model_view.variables
        outputs = [(explainer.map_shape, "float32"), ((), "int32"), ((), "float32"),
                   ((), "float32")]
        view = explainer.model_view
        # Maps, resolved targets and decoy statistics, in chunks of the memory knob.
        return backend.compile_chunks(
            self.chunk(fuse), explainer.inputs_per_pass,
            [((None,) + view.call_shape, view.call_dtype), ((None,), "int32")], outputs,
            jit_compile=jit_compile, variables=variables)

    def for_score_function(self, score_fn):
        """The compiled ``inputs -> maps`` for a score function, built once per function."""
        # Keyed by identity (score objects need not be hashable); the entry keeps the
        # object alive so that its id cannot be reused by another one.
        entry = self._score_functions.get(id(score_fn))
        if entry is None:
            def function(x):
                return self.maps_for_chunk(x, CallableTargets(score_fn))[0]

            if len(self._score_functions) >= self.MAX_SCORE_FUNCTIONS:
                self._score_functions.pop(next(iter(self._score_functions)))
            entry = (score_fn, backend.compile(function, jit_compile=self.explainer.jit_compile,
                                               variables=self.explainer.model_view.variables))
            self._score_functions[id(score_fn)] = entry
        return entry[1]

    def decoys(self, pairs):
        """A compiled ``(inputs, first pair) -> (decoys, found)`` for chunks of ``pairs``
        pairs (built once per size)."""
        if pairs not in self._decoy_functions:
            explainer = self.explainer

            def decoys(x, start):
                z = explainer.model_view.space(x)
                values, found, _ = explainer.decoys.solve(z, start, pairs)
                return explainer.decoys.decoy_images(z, start, values), found

            self._decoy_functions[pairs] = backend.compile(
                decoys, jit_compile=explainer.jit_compile,
                variables=explainer.model_view.variables)
        return self._decoy_functions[pairs]
