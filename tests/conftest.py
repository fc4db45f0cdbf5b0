import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_dance as kd  # noqa: E402
from helpers import small_conv_model  # noqa: E402


@pytest.fixture(scope="session")
def digits_model():
    return kd.datasets.load_digits_model()


@pytest.fixture(scope="session")
def digits_samples():
    x_train, y_train, x_test, y_test = kd.datasets.load_digits()
    return x_test[:6], y_test[:6]


@pytest.fixture
def conv_model():
    return small_conv_model()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
