"""What every training script here shares: a fixed seed and deterministic kernels on the
active Keras backend (TensorFlow, JAX or PyTorch; ``KERAS_BACKEND``), and the ``--quick``
smoke run the test suite makes of each script on every backend."""

import keras


def deterministic(seed=0):
    """Seeds Python, NumPy and the backend, and asks the backend for deterministic kernels
    (JAX's XLA:CPU kernels are deterministic as they are)."""
    keras.utils.set_random_seed(seed)
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True)


def add_quick_flag(parser):
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: a few hundred examples, one epoch (the test "
                             "suite's check that the script runs on every backend)")
