# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Temperature scaling: calibrated class probabilities (`fit_temperature`)."""

import numpy as np
import torch

from .._constants import CLASSES

__all__ = ["fit_temperature"]


def fit_temperature(logits, labels, *, classes=CLASSES, max_iter=200):
    """
    Temperature scaling: the T > 0 minimising the NLL of ``softmax(logits / T)``.

    Fit on a validation set; dividing the logits by T calibrates the
    probabilities without changing the predicted classes.

    Parameters
    ----------
    logits : array-like or Tensor, shape (N, K)
        Network outputs before softmax.
    labels : array-like of int, shape (N,)
        True labels (values of ``classes``).
    classes : sequence of int, optional
        Default 1..4.
    max_iter : int, optional
        L-BFGS iterations.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from astro_clustercls.training import fit_temperature
    >>> logits = np.array([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, 4.0]])
    >>> t = fit_temperature(logits, [1, 2, 1, 1], classes=(1, 2))  # 3 of 4 right
    >>> round(t, 2)  # softmax(4 / T) = 0.75 -> T = 4 / ln 3
    3.64
    """
    logits = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    classes = np.asarray(classes).ravel()
    labels = np.asarray(labels).ravel()
    if logits.ndim != 2 or logits.shape != (labels.size, classes.size):
        raise ValueError(f"'logits' must have shape ({labels.size}, {classes.size}), "
                         f"got {tuple(logits.shape)}")
    target = torch.as_tensor(np.searchsorted(classes, labels), dtype=torch.int64)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), target)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(1e-3, 1e3))
