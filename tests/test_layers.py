"""The package's layers import only downward, and TensorFlow only where it is the product.

Every ``import`` of the package (module level and inside functions) is parsed; a module
may import its own layer or a lower one, never a higher one, and no two modules may
import each other, directly or through others. docs/layers.md shows the same table.
"""

import ast
import re
from pathlib import Path


PACKAGE = Path(__file__).resolve().parent.parent / "keras_dance"

#: From the bottom up; a module belongs to the first row whose pattern matches its name.
LAYERS = [
    ("backend", r"keras_dance\.backend(\..*)?"),
    ("helpers", r"keras_dance\.(_tensor|_random|_chunking|_patches|_validation|postprocess"
                r"|_similarity|_tfdata|_files|_tensorboard)"),
    ("model", r"keras_dance\.(_targets|_graph|_logits|_inputs|_vit)"),
    ("model view", r"keras_dance\.model_view"),
    ("methods", r"keras_dance\.methods(\..*)?"),
    ("decoys", r"keras_dance\.(decoys(\..*)?|aggregate)"),
    ("explainer", r"keras_dance\.(explainer|_compiled)"),
    ("users", r"keras_dance\.(export|callbacks|metrics(\..*)?|sanity|attacks|training(\..*)?"
              r"|viz|cli|datasets|text|distributed(\..*)?)"),
    ("engines", r"keras_dance\.(ray|beam)"),
    ("package", r"keras_dance"),
]

#: The upward imports: ``Explainer.export`` and ``Explainer.explain_text`` are the public
#: front doors to the export and text modules (the contract's ``explainer.export(path)``), imported when called, as
#: ``keras.Model.export`` does with Keras's export package.
UPWARD_ALLOWED = {("keras_dance.explainer", "keras_dance.export"),
                  ("keras_dance.explainer", "keras_dance.text")}

#: Where ``import tensorflow`` may stand: the seam's TensorFlow module, the JAX module's
#: ``to_tensorflow`` (jax2tf, for export only, imported when called) and TensorFlow's
#: product, SavedModel export and serving (``export``: a dataset worker runs an exported
#: SavedModel through it). TensorBoard summaries are written with TensorBoard's own
#: writer; tf.data input (``_tfdata``) reads the module only when a dataset was given.
TENSORFLOW_ALLOWED = {"keras_dance.backend.tensorflow", "keras_dance.backend.jax",
                      "keras_dance.export"}


def layer_of(module):
    for index, (_, pattern) in enumerate(LAYERS):
        if re.fullmatch(pattern, module):
            return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and docs/layers.md")


def modules():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name, path):
    """``(imported module, line)`` of every keras_dance / tensorflow import in ``path``."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [base]
            # "from keras_dance import _validation" imports the module keras_dance._validation
            targets += [f"{base}.{alias.name}" for alias in node.names
                        if f"{base}.{alias.name}" in ALL]
            found += [(target, node.lineno) for target in targets]
    return [(target, line) for target, line in found
            if target.split(".")[0] in ("keras_dance", "tensorflow")]


ALL = modules()


def graph():
    edges = {}
    for name, path in ALL.items():
        edges[name] = {(target, line) for target, line in imports(name, path)
                       if target in ALL and target != name}
    return edges


def test_every_import_runs_downward():
    upward = []
    for name, targets in graph().items():
        for target, line in targets:
            if target == "keras_dance" or (name, target) in UPWARD_ALLOWED:
                continue  # the package's lazy front door (PEP 562), not a layer
            if layer_of(target) > layer_of(name):
                upward.append(f"{name}:{line} imports {target} "
                              f"({LAYERS[layer_of(name)][0]} -> {LAYERS[layer_of(target)][0]})")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_no_circular_imports():
    edges = {name: {target for target, _ in targets
                    # a package's __init__ gathering its own submodules is not a cycle
                    if not target.startswith(name + ".") and target != "keras_dance"}
             for name, targets in graph().items()}
    cycles = []
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[node] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_tensorflow_is_imported_only_in_the_seam_and_its_products():
    outside = sorted(f"{name}:{line}" for name, path in ALL.items()
                     for target, line in imports(name, path)
                     if target.split(".")[0] == "tensorflow" and name not in TENSORFLOW_ALLOWED)
    assert not outside, "TensorFlow imported outside the seam:\n" + "\n".join(outside)


def test_the_layer_table_covers_every_module():
    for name in ALL:
        layer_of(name)
