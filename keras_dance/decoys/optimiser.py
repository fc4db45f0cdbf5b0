"""The decoy optimiser: projected Adam on patch values, a per-problem multiplier, the best
feasible iterate (docs/papers.md §1; the solver is our reconstruction, see DecoyConfig).

Every problem of a chunk is one row of a batch; the steps run in one compiled loop
(``backend.while_loop``) that stops once every problem has stalled.
"""

from typing import Callable, NamedTuple, Optional

import numpy as np
from keras import ops

from keras_dance import backend


class Problem(NamedTuple):
    """The constrained problems of one chunk, one per row ``k``.

    Attributes:
        base: ``(K, *window, C)`` the input (or its crop) each problem perturbs.
        index: ``(K, *patch, 1 + ndim)`` where each problem's patch lies in ``base``.
        start: ``(K, *patch, C)`` the patch's values in ``base`` (x's own).
        sign: ``(K,)`` +1 pushes the patch up, −1 down.
        epsilon: ``(K,)`` the tolerance on ``F_l``.
        reference: ``F_l(x)`` at the units each problem compares (its crop's window).
        footprint: ``(K, *units, 1)`` float mask of the units compared; None: all.
        features: ``F_l`` of a (cropped) iterate.
    """

    base: object
    index: object
    start: object
    sign: object
    epsilon: object
    reference: object
    footprint: Optional[object]
    features: Callable


class SolverState(NamedTuple):
    """The optimiser's state, one row per problem.

    Attributes:
        step: int32 scalar, Adam steps taken so far.
        values: ``(K, *patch, C)`` the current patch values (inside the box and the cap).
        iterate: ``base`` with ``values`` written into the patch (what ``F_l`` sees).
        first_moment, second_moment: Adam's running moments of the gradient.
        multiplier: ``(K,)`` the Lagrange multiplier λ.
        best: ``(K, *patch, C)`` the best feasible values so far (``start`` until one).
        best_objective: ``(K,)`` their objective ``Σ relu(s·(x̃ − x))``.
        found: ``(K,)`` bool, some evaluated iterate was feasible.
        stall: ``(K,)`` int32 steps since ``best_objective`` last grew by ``min_gain``.
        anchor: ``(K,)`` ``best_objective`` when it last grew.
    """

    step: object
    values: object
    iterate: object
    first_moment: object
    second_moment: object
    multiplier: object
    best: object
    best_objective: object
    found: object
    stall: object
    anchor: object


def optimise(problem, config, bounds, patch_features, initial_offset, fuse=True):
    """Solves every problem of ``problem`` with projected Adam.

    Minimises ``−Σ_patch s·(x̃ − x)/|M| + λ · Σ_j relu(|ΔF_j| − ε)/ε`` over the patch
    values, projected onto the box ``bounds`` (and ``|x̃ − x| ≤ τ``) after each step. The
    penalty's gradient with respect to ``F_l`` is written out (``λ/ε · sign(ΔF)`` where a
    unit violates) and pulled back through ``F_l`` (``backend.vjp``), so each step adds
    only a few element-wise passes to ``F_l``'s own forward and backward pass; with
    ``fuse`` they run as XLA-fused kernels. λ grows ×``multiplier_growth`` while a
    problem is violated and shrinks while it holds. Feasibility is the constraint itself,
    ``max_j |F_l(x̃) − F_l(x)|_j ≤ ε``; the best feasible iterate is kept.

    Args:
        problem: a ``Problem``.
        config: the ``DecoyConfig`` (learning rate, steps, patience, τ, growth, λ₀).
        bounds: ``(lo, hi)``, floats or per-channel arrays.
        patch_features: values in one patch (the objective's normaliser).
        initial_offset: ``(K, *patch, C)`` uniform draws in (0, 1): the random start,
            one Adam step into the patch along the sign.
        fuse: compile the element-wise work with XLA. Defaults to True.

    Returns:
        ``(best values (K, *patch, C), found (K,) bool, steps taken)``.
    """
    base, index, start, sign, epsilon, reference, footprint, features = problem
    lo, hi = bounds
    step_size = config.learning_rate * (hi - lo)  # per channel for embedding boxes
    min_gain = 0.01 * float(np.mean(step_size)) * patch_features
    # Per-channel arrays as tensors: an array on the left of a backend tensor is NumPy's
    # operation, which PyTorch's tensors do not take.
    lo, hi, step_size = (v if np.ndim(v) == 0 else ops.convert_to_tensor(v, "float32")
                         for v in (lo, hi, step_size))
    growth = config.multiplier_growth
    per_row = (-1,) + (1,) * (len(start.shape) - 1)
    sign = ops.reshape(sign, per_row)
    axes = tuple(range(1, len(start.shape)))
    # A problem has stalled when its best feasible objective has not grown by 1% of one
    # full Adam step over the patch since the last time it did.
    surrogate_grad = -sign / float(patch_features)
    tau = config.tau
    rows = ops.shape(base)[0]

    def project(values):
        delta = values - start
        if tau is not None:
            delta = ops.clip(delta, -tau, tau)
        return ops.clip(start + delta, lo, hi)

    def place(values):
        return backend.scatter_nd_update(base, index, values)

    def constraint(f, multiplier):
        """``(dPenalty/dF_l, max violation)`` per row."""
        diff = f - reference
        units = ops.abs(diff) if footprint is None else ops.abs(diff) * footprint
        unit_axes = tuple(range(1, len(f.shape)))
        violation = ops.max(units, axis=unit_axes)
        scale = ops.reshape(multiplier / ops.maximum(epsilon, 1e-12),
                            (-1,) + (1,) * len(unit_axes))
        limit = ops.reshape(epsilon, (-1,) + (1,) * len(unit_axes))
        grad = ops.where(units > limit, ops.sign(diff) * scale, ops.zeros_like(diff))
        return grad, violation

    def record(state, violation):
        """Counts the evaluated iterate: the best feasible values, found, stall."""
        values = state.values
        objective = ops.sum(ops.relu(sign * (values - start)), axis=axes)
        feasible = violation <= epsilon
        better = ops.logical_and(feasible, objective > state.best_objective)
        best_objective = ops.where(better, objective, state.best_objective)
        gained = best_objective > state.anchor + min_gain
        return state._replace(
            best=ops.where(ops.reshape(better, per_row), values, state.best),
            best_objective=best_objective, found=ops.logical_or(state.found, feasible),
            stall=ops.where(gained, 0, state.stall + 1),
            anchor=ops.where(gained, best_objective, state.anchor))

    def update(state, grad, violation):
        """Records the evaluated iterate, then one projected Adam step."""
        state = record(state, violation)
        grad = backend.gather_nd(grad, index) + surrogate_grad
        multiplier = ops.where(violation > epsilon, state.multiplier * growth,
                               ops.maximum(state.multiplier / growth, 1e-6))
        step = state.step + 1
        first = 0.9 * state.first_moment + 0.1 * grad
        second = 0.999 * state.second_moment + 0.001 * ops.square(grad)
        count = ops.cast(step, "float32")
        first_hat = first / (1.0 - ops.power(0.9, count))
        second_hat = second / (1.0 - ops.power(0.999, count))
        values = project(state.values - step_size * first_hat / (ops.sqrt(second_hat) + 1e-12))
        return state._replace(step=step, values=values, iterate=place(values),
                              first_moment=first, second_moment=second,
                              multiplier=multiplier)

    if fuse:
        constraint = backend.compile(constraint, jit_compile=True)
        update = backend.compile(update, jit_compile=True)

    values = project(start + sign * step_size * initial_offset)
    state = SolverState(
        step=ops.convert_to_tensor(0, "int32"), values=values, iterate=place(values),
        first_moment=ops.zeros_like(values), second_moment=ops.zeros_like(values),
        multiplier=ops.full((rows,), config.initial_multiplier), best=start,
        best_objective=ops.zeros((rows,)), found=ops.zeros((rows,), "bool"),
        stall=ops.zeros((rows,), "int32"), anchor=ops.zeros((rows,)))

    def body(state):
        f, pullback = backend.vjp(features, state.iterate)
        grad_f, violation = constraint(f, state.multiplier)
        return (update(state, pullback(grad_f), violation),)

    def cond(state):
        running = state.step < config.steps
        if config.patience:
            running = ops.logical_and(running, ops.any(state.stall < config.patience))
        return running

    (state,) = backend.while_loop(cond, body, (state,))
    _, violation = constraint(features(state.iterate), state.multiplier)
    state = record(state, violation)  # the last iterate counts too
    return state.best, state.found, state.step
