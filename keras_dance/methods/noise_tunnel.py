"""SquareGrad and VarGrad: SmoothGrad's noise loop with another reduction of the maps.

SquareGrad (Hooker et al., NeurIPS 2019) averages the squared maps; VarGrad (Adebayo et
al., ICLR 2018 workshop) takes their variance. Both wrap any method and share
SmoothGrad's seeded noise (the same draws, so the three are computed from the same
samples), its σ and its chunking under the memory knob.
"""

from keras_dance.methods.smoothgrad import SmoothGrad


class SquareGrad(SmoothGrad):
    """``E_SQ(x) = (1/N) Σ_j E(x + σ z_j)²`` (≥ 0). Arguments as ``SmoothGrad``.

    Example:
        >>> import keras_dance as kd
        >>> method = kd.methods.SquareGrad(num_samples=20, noise_level=0.15, seed=0)
    """

    name = "squaregrad"
    reduction = "square"


class VarGrad(SmoothGrad):
    """``E_VG(x) = (1/N) Σ_j E(x + σ z_j)² − ((1/N) Σ_j E(x + σ z_j))²``: the variance of
    the maps under noise (≥ 0; population variance). Arguments as ``SmoothGrad``.

    Example:
        >>> import keras_dance as kd
        >>> method = kd.methods.VarGrad(num_samples=20, noise_level=0.15, seed=0)
    """

    name = "vargrad"
    reduction = "variance"
