"""The linear baseline of every low-data sweep: minimum-norm least squares.

With ``n`` training pairs ``X (n, C_in N)``, ``Y (n, C_out N)`` (flattened, centred), the
minimum-norm (or ridge) solution of ``min ||A X^T - Y^T||`` is
``A = Y^T (X X^T + lambda I)^+ X``; it is applied as ``y = ((x X^T) (X X^T + lambda I)^+) Y``,
which stores ``O(n N)`` numbers instead of the dense ``N x N`` matrix. For a linear PDE
(Poisson) this is the obvious answer a learned operator has to beat (``docs/neural_hss.md``).
"""

from __future__ import annotations

import torch
from torch import nn


class LeastSquares(nn.Module):
    """Affine operator ``x -> A (x - x_mean) + y_mean`` fitted in closed form.

    Build it with :func:`fit_least_squares`. Shapes: ``(B, C_in, *grid) -> (B, C_out, *grid)``.
    """

    def __init__(self, x_train: torch.Tensor, coef: torch.Tensor, x_mean: torch.Tensor,
                 y_mean: torch.Tensor, out_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("x_train", x_train)  # (n, C_in N)
        self.register_buffer("coef", coef)        # (n, C_out N)
        self.register_buffer("x_mean", x_mean)
        self.register_buffer("y_mean", y_mean)
        self.out_shape = tuple(out_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1).to(self.x_train.dtype)
        if flat.shape[1] != self.x_train.shape[1]:
            raise ValueError(f"input {tuple(x.shape)} does not match the fitted data "
                             f"({self.x_train.shape[1]} values per sample)")
        y = ((flat - self.x_mean) @ self.x_train.T) @ self.coef + self.y_mean
        return y.reshape(x.shape[0], *self.out_shape).to(x.dtype)


def fit_least_squares(x: torch.Tensor, y: torch.Tensor, ridge: float = 0.0,
                      center: bool = False) -> LeastSquares:
    """Fit :class:`LeastSquares` to ``x (n, C_in, *grid)``, ``y (n, C_out, *grid)``.

    ``ridge = 0`` gives the minimum-norm interpolant (pseudo-inverse of the Gram matrix with a
    relative cut-off at 1e-10); ``ridge > 0`` adds ``ridge * mean(diag)`` to the Gram matrix.
    ``center=True`` fits an affine map around the sample means (worse for a linear operator
    and few samples, where the mean of the samples is a poor prediction). Computed in float64.
    """
    if x.shape[0] != y.shape[0] or x.shape[0] < 1:
        raise ValueError(f"x has {x.shape[0]} samples and y {y.shape[0]}; need the same number >= 1")
    X = x.reshape(x.shape[0], -1).double()
    Y = y.reshape(y.shape[0], -1).double()
    x_mean = X.mean(0) if center and len(X) > 1 else torch.zeros_like(X[0])
    y_mean = Y.mean(0) if center and len(Y) > 1 else torch.zeros_like(Y[0])
    Xc, Yc = X - x_mean, Y - y_mean
    gram = Xc @ Xc.T
    if ridge > 0:
        gram = gram + ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
        coef = torch.linalg.solve(gram, Yc)
    else:
        coef = torch.linalg.pinv(gram, rtol=1e-10, hermitian=True) @ Yc
    return LeastSquares(Xc, coef, x_mean, y_mean, tuple(y.shape[1:]))
