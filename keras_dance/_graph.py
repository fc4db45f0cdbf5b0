"""Layer graphs: the computation from a model's input to any layer, nested models included.

A Keras functional model is a DAG of *nodes* (one call of an operation on symbolic
tensors). ``resolve`` finds a layer by name, path, index or object through models used
as layers (a base model inside a transfer-learning model, at any depth), and
``GraphFunction`` evaluates ``x -> F_l(x)`` node by node, with nested functional models
inlined. Unlike ``keras.Model(model.input, layer.output)`` it needs no new symbolic call
(the user's layers gain no nodes) and accepts inputs of any spatial size, which is what
receptive-field crops are.

This module is the one place keras_dance reads Keras's graph records
(``KerasTensor._keras_history``, ``Operation._inbound_nodes``, ``Node.arguments``).
"""

import dataclasses
import inspect

import keras


def graph_io(model):
    """``(inputs, outputs)`` symbolic tensors of a functional/Sequential model, else None."""
    if not isinstance(model, keras.Model):
        return None
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        return None
    if not inputs or not outputs:
        return None
    return list(inputs), list(outputs)


def layer_paths(model, prefix=()):
    """Every layer reachable from ``model.layers``, as ``(path, layer)``; nested included."""
    found = []
    for layer in getattr(model, "layers", []):
        path = prefix + (layer.name,)
        found.append((path, layer))
        if graph_io(layer) is not None:
            found.extend(layer_paths(layer, path))
    return found


def sublayer_paths(model, prefix=()):
    """``layer_paths`` plus the sublayers custom layers call (keras_hub's
    ``TokenAndPositionEmbedding`` holds ``token_embedding``; a ``TransformerEncoder`` its
    attention), as ``(path, layer)``. Sublayers are not graph nodes: they are reached by
    intercepting their calls (``kd._inputs``), not by ``GraphFunction``."""
    found = []
    for path, layer in layer_paths(model, prefix):
        found.append((path, layer))
        if graph_io(layer) is not None:
            continue
        found.extend(_inner(layer, path))
    return found


def _inner(layer, path):
    found = []
    for inner in layer._flatten_layers(include_self=False, recursive=False):
        inner_path = path + (inner.name,)
        found.append((inner_path, inner))
        found.extend(_inner(inner, inner_path))
    return found


def find_layer(model, layer, paths=None):
    """``(path, layer)`` for a name, "a/b" path (or a unique end of one) or layer object
    among ``paths`` (default: ``sublayer_paths(model)``): what the intercepting code
    paths accept.

    Raises:
        ValueError: unknown (listing every path) or ambiguous (listing the matches).
    """
    paths = sublayer_paths(model) if paths is None else paths
    if isinstance(layer, keras.layers.Layer):
        matches = [(p, item) for p, item in paths if item is layer]
        what = f"the layer object {layer.name!r}"
    elif isinstance(layer, str):
        key = tuple(layer.split("/"))  # a full path, or its end ("block_2/ln_1")
        matches = [(p, item) for p, item in paths if p == key]
        matches = matches or [(p, item) for p, item in paths if p[-len(key):] == key]
        what = f"layer={layer!r}"
    else:
        return "/".join(item.name for item in resolve(model, layer)), resolve(model, layer)[-1]
    unique = {id(item): (p, item) for p, item in matches}
    if len(unique) == 1:
        path, item = next(iter(unique.values()))
        return "/".join(path), item
    if not matches:
        raise ValueError(
            "Expected `layer` to name a layer of the model (a name, or a path "
            f"'outer/inner'); its layers are: {_format([p for p, _ in paths])}. "
            f"Received: {what}")
    raise ValueError(
        f"Expected `layer` to designate one layer, but {len(matches)} match: "
        f"{_format([p for p, _ in matches])}. Pass the full path instead. Received: {what}")


def _format(paths):
    return ", ".join("/".join(p) for p in paths)


def resolve(model, layer):
    """The layers from ``model`` down to the layer ``layer`` designates.

    Args:
        model: a functional or Sequential ``keras.Model``.
        layer: a name (searched through nested models), a path ``"outer/inner"``, an index
            into ``model.layers`` or a ``keras.layers.Layer``.

    Returns:
        a tuple of layers: every nested model on the way, then the layer itself.

    Raises:
        ValueError: an unknown name (the message lists every path), an ambiguous name or
            layer object (it lists the matching paths), an index out of range.
    """
    paths = layer_paths(model)
    by_path = {p: item for p, item in paths}

    def chain(path):
        return tuple(by_path[path[:i]] for i in range(1, len(path) + 1))

    if isinstance(layer, keras.layers.Layer):
        matches = [p for p, item in paths if item is layer]
        what = f"the layer object {layer.name!r}"
    elif isinstance(layer, str):
        if "/" in layer:
            path = tuple(layer.split("/"))
            if path in by_path:
                return chain(path)
            matches = []
        else:
            matches = [p for p, _ in paths if p[-1] == layer]
        what = f"layer={layer!r}"
    else:
        count = len(model.layers)
        if not -count <= int(layer) < count:
            raise ValueError(
                f"Expected `layer` to be an index in [{-count}, {count}) of the model's "
                f"top-level layers, or a layer name. Received: layer={layer!r}"
            )
        return (model.layers[int(layer)],)
    if len(matches) == 1:
        return chain(matches[0])
    if not matches:
        raise ValueError(
            "Expected `layer` to name a layer of the model (a name, searched through "
            "nested models, or a path 'outer/inner'); its layers are: "
            f"{_format([p for p, _ in paths])}. Received: {what}"
        )
    raise ValueError(
        f"Expected `layer` to designate one layer, but {len(matches)} match: "
        f"{_format(matches)}. Pass the full path instead. Received: {what}"
    )


def _producer(tensor):
    """The node that made ``tensor`` (None for a graph input)."""
    history = getattr(tensor, "_keras_history", None)
    if history is None or history.operation is None:
        return None
    node = history.operation._inbound_nodes[history.node_index]
    return None if node.is_input else node


def _nodes(inputs, outputs):
    """The nodes computing ``outputs`` from ``inputs``, in a topological order."""
    stop = {id(t) for t in inputs}
    order, seen = [], set()
    stack = [(t, False) for t in outputs]
    while stack:
        tensor, expanded = stack.pop()
        if id(tensor) in stop:
            continue
        node = _producer(tensor)
        if node is None:
            raise ValueError(f"Tensor {tensor.name!r} is not computed from the model's input.")
        if expanded:
            if id(node) not in seen:
                seen.add(id(node))
                order.append(node)
            continue
        if id(node) in seen:
            continue
        stack.append((tensor, True))
        stack.extend((t, False) for t in node.input_tensors if id(t) not in stop)
    return order


def layer_outputs(model):
    """``[(path, output shape)]`` of every layer computed between the model's input and
    outputs, in graph order; ``path`` joins the names through nested models
    ("outer/inner"), the shape leaves out the batch axis. Input layers are left out."""
    inputs, outputs = graph_io(model)
    producers = {}
    for path, layer in layer_paths(model):
        for node in getattr(layer, "_inbound_nodes", []):
            for tensor in node.outputs:
                producers[id(tensor)] = path
    found = []
    for step in _flatten(inputs, outputs):
        if step.operation is None or step.node is None:
            continue
        if isinstance(step.operation, keras.layers.InputLayer):
            continue
        tensor = step.node.outputs[0]
        if id(tensor) in producers:
            found.append(("/".join(producers[id(tensor)]), tuple(tensor.shape[1:])))
    return found


def output_shape(model, path):
    """The output shape (without the batch axis) of the layer at ``path`` (``resolve``)."""
    _, out = _steps_to(model, graph_io(model)[0], path)
    return tuple(out[0].shape[1:])


@dataclasses.dataclass
class Step:
    """One operation of the flattened graph (``operation`` None: a copy)."""

    operation: object
    node: object
    inputs: tuple  # ids of the tensors read
    outputs: tuple  # ids of the tensors written


def _unique_node(nodes, operation, graph_name):
    matches = [node for node in nodes if node.operation is operation]
    if len(matches) != 1:
        raise ValueError(
            f"Expected the layer {operation.name!r} to be called exactly once inside "
            f"{graph_name!r} (its output must be one tensor). Received: it is called "
            f"{len(matches)} times there"
        )
    return matches[0]


def _flatten(inputs, outputs):
    """Steps computing ``outputs`` from ``inputs``; nested functional models inlined."""
    steps = []
    for node in _nodes(inputs, outputs):
        io = graph_io(node.operation)
        if io is None or len(io[0]) != len(node.input_tensors):
            steps.append(Step(node.operation, node, tuple(id(t) for t in node.input_tensors),
                              tuple(id(t) for t in node.outputs)))
            continue
        inner_in, inner_out = io
        steps.append(Step(None, None, tuple(id(t) for t in node.input_tensors),
                          tuple(id(t) for t in inner_in)))
        steps.extend(_flatten(inner_in, inner_out))
        steps.append(Step(None, None, tuple(id(t) for t in inner_out),
                          tuple(id(t) for t in node.outputs)))
    return steps


class GraphFunction:
    """``x -> F_l(x)``: a model's computation up to one layer, for inputs of any size.

    Args:
        model: a functional or Sequential model with one input.
        path: the layers from ``model`` down to the target (from ``resolve``); None: the
            model's outputs (one tensor, or a list for several).
        start: the layers down to a layer whose output becomes the function's input
            (e.g. an ``Embedding``: token models are explained from the embedded
            sequence); None: the model's input. Everything the target needs must come
            through it.
        capture: the layers down to a layer whose output is returned as well, computed
            in the same pass: the call returns ``(that output, result)``.
        output_hook: ``hook(operation, outputs) -> outputs`` applied to every operation's
            outputs (e.g. to change how gradients flow back through them).

    Attributes:
        steps: the flattened operations, in order (see ``Step``); the input is
            ``input_key``, the result ``output_key``.
        layer: the target layer (None for the model's outputs).
    """

    def __init__(self, model, path, start=None, capture=None, output_hook=None):
        inputs, outputs = graph_io(model)
        if path is not None and isinstance(path[-1], keras.layers.InputLayer):
            raise ValueError(
                "Expected an intermediate layer for the decoy constraint, not an input "
                "layer (F_l would be the input itself). Received: layer "
                f"{path[-1].name!r}"
            )
        self.layer = None if path is None else path[-1]
        self.name = "outputs" if path is None else "/".join(layer.name for layer in path)
        self.input_key = id(inputs[0])
        if path is None:
            steps = _flatten(inputs, outputs)
            self.output_keys = [id(t) for t in outputs]
        else:
            steps, out = _steps_to(model, inputs, path)
            if len(out) != 1:
                raise ValueError(
                    f"Expected a layer with one output. Received: layer {path[-1].name!r} "
                    f"with {len(out)} outputs"
                )
            self.output_keys = [id(out[0])]
        self.output_key = self.output_keys[0]
        if start is not None:
            if path is not None and path[-1] is start[-1]:
                raise ValueError(
                    "Expected an intermediate layer after the embedding for the decoy "
                    "constraint, not the embedding itself (F_l would be the explained "
                    f"sequence itself). Received: layer {path[-1].name!r}")
            _, (start_tensor, *rest) = _steps_to(model, inputs, start)
            steps = _prune(steps, self.output_keys, id(start_tensor))
            if any(self.input_key in step.inputs for step in steps):
                raise ValueError(
                    f"Expected {self.name!r} to depend on the model's input only through "
                    f"the layer {start[-1].name!r} (maps and decoys are taken there). "
                    "Received: a graph where the input also reaches it another way, e.g. "
                    "an Embedding's padding mask (mask_zero=True) read by a later layer "
                    "such as an LSTM; use an explicit `pad_id` without mask_zero, or name "
                    "with `embedding_layer=` a layer whose output carries everything"
                )
            self.input_key = id(start_tensor)
        self.steps = steps
        self._takes_training = {}
        self.output_hook = output_hook
        self.capture_key = None
        if capture is not None:  # a layer whose output is returned too (CAM methods)
            _, out = _steps_to(model, inputs, capture)
            if len(out) != 1:
                raise ValueError(
                    f"Expected a layer with one output. Received: layer "
                    f"{capture[-1].name!r} with {len(out)} outputs")
            self.capture_key = id(out[0])
            if not any(self.capture_key in step.outputs for step in steps):
                raise ValueError(
                    f"Expected the layer {capture[-1].name!r} to lie between the input and "
                    f"{self.name!r}. Received: a layer the computation does not pass")

    def _call(self, step, values, training):
        args, kwargs = step.node.arguments.fill_in(values)
        operation = step.operation
        key = id(operation)
        if key not in self._takes_training:
            call = getattr(operation, "call", None)
            try:
                takes = call is not None and "training" in inspect.signature(call).parameters
            except (TypeError, ValueError):
                takes = False
            self._takes_training[key] = takes
        if self._takes_training[key]:
            kwargs["training"] = training
        return operation(*args, **kwargs)

    def __call__(self, x, training=False, at_capture=None):
        """The result for ``x`` (and the captured layer's output first, with ``capture``);
        ``at_capture(output) -> output`` is applied to the captured output before the
        layers after it use it (how the backend takes a gradient at that layer)."""
        values = {self.input_key: x}
        for step in self.steps:
            if step.operation is None:
                for source, target in zip(step.inputs, step.outputs):
                    values[target] = values[source]
                continue
            outputs = self._call(step, values, training)
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            if self.output_hook is not None:
                outputs = self.output_hook(step.operation, outputs)
            for key, value in zip(step.outputs, outputs):
                if at_capture is not None and key == self.capture_key:
                    value = at_capture(value)
                values[key] = value
        if self.layer is None and len(self.output_keys) > 1:
            result = [values[key] for key in self.output_keys]
        else:
            result = values[self.output_key]
        if self.capture_key is not None:
            return values[self.capture_key], result
        return result


def _steps_to(model, inputs, path):
    """``(steps computing the output of path[-1] from inputs, that node's outputs)``."""
    steps, graph, graph_inputs = [], model, inputs
    for depth, layer in enumerate(path):
        _, graph_outputs = graph_io(graph)
        node = _unique_node(_nodes(graph_inputs, graph_outputs), layer, graph.name)
        if depth == len(path) - 1:
            steps.extend(_flatten(graph_inputs, node.outputs))
            return steps, list(node.outputs)
        steps.extend(_flatten(graph_inputs, node.input_tensors))
        inner_inputs, _ = graph_io(layer)
        steps.append(Step(None, None, tuple(id(t) for t in node.input_tensors),
                          tuple(id(t) for t in inner_inputs)))
        graph, graph_inputs = layer, inner_inputs


def _prune(steps, output_keys, start_key):
    """The steps ``output_keys`` need when ``start_key``'s value is given."""
    needed, kept = set(output_keys), []
    for step in reversed(steps):
        if not needed.intersection(step.outputs) or start_key in step.outputs:
            continue
        kept.append(step)
        needed.update(step.inputs)
    return kept[::-1]
