"""Bounds on the numbers a checkpoint holds, checked as float32: the dtype vae-tui computes in.

A value is checked after its cast, never before: a float64 1e300 is finite until it becomes
float32, and then it is infinite. Trained models stay far inside these bounds: the bundled
models' largest weight is 2.6, their encodings lie within +-5.2 and the explorer's z within
+-10. A value past them was not written by training, and arithmetic on it can leave float32.
"""

import torch

# With every weight within +-1e4, pixels in [0, 1], |z| <= 10 and every size at its largest (65,536), the largest
# activation either arch can reach is about 1e31 (the conv decoder: 65,536 * 10 * 1e4 into its hidden layer, times
# 65,536 * 1e4, then 256 and 128 taps times 1e4), below float32's 3.4e38: encoding and decoding stay finite.
MAX_WEIGHT = 1e4
# mu, the class centroids (means of mu) and the PCA mean: 2,000 times the bundled models' largest encoding, and small
# enough that a square (1e8) or a projection over 65,536 dimensions (about 1e9) stays far inside float32.
MAX_ENCODING = 1e4
MAX_VARIANCE = MAX_ENCODING**2  # Var of values within +-MAX_ENCODING is at most its square
# Mean KL of a dimension, nats: the bundled models' largest is 2.6. 1/2 mu^2 alone reaches 5e7 at MAX_ENCODING.
MAX_KL = 1e8
# KL is >= 0, but 1/2 (mu^2 + sigma^2 - 1 - log sigma^2) in float32 is -3e-8 for a dimension at the prior.
KL_ROUNDING = 1e-3
# The PCA axes are unit vectors (or zero, the second of a 1-D latent): their length within float32's rounding.
MAX_AXIS_LENGTH = 1 + 1e-3


def float32_problem(tensor: torch.Tensor, bound: float, low: float | None = None) -> str | None:
    """Why tensor is not floats that, as float32, are finite and within +-bound (or low..bound); None if they are.

    One pass over the values (their minimum and maximum, where NaN propagates), no copy for float32.
    """
    if not tensor.is_floating_point():
        return f"is {str(tensor.dtype).removeprefix('torch.')}, expected floating point"
    if not tensor.numel():
        return None
    as_float32 = tensor.float()
    smallest, largest = (v.item() for v in torch.aminmax(as_float32))
    if not (abs(smallest) < float("inf") and abs(largest) < float("inf")):  # NaN fails both comparisons
        if torch.isfinite(tensor).all():
            return "has values beyond float32's range"
        return "contains NaN or infinite values"
    low = -bound if low is None else low
    if smallest < low or largest > bound:
        return f"has values outside {low:g}..{bound:g}, which training never writes"
    return None
