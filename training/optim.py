"""The optimiser of a fit: Adam (the default) or SGD with momentum and a step schedule.

:func:`make_optimizer` builds it from a :class:`~affectstream.training.train.TrainConfig`'s
``optimizer`` (``adam`` or ``sgd``), ``lr``, ``weight_decay``, ``momentum`` (SGD only),
``lr_step_epochs`` and ``lr_gamma`` (the learning rate is multiplied by ``lr_gamma`` every
``lr_step_epochs`` epochs; 0: constant). Named setups from the sources, such as RTCAN-1D's SGD,
are in :data:`affectstream.training.options.OPTIMIZERS`.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["ALGORITHMS", "make_optimizer"]

ALGORITHMS = ("adam", "sgd")


def make_optimizer(
    algorithm: str,
    params: Iterable[nn.Parameter],
    *,
    lr: float,
    weight_decay: float,
    momentum: float = 0.0,
    lr_step_epochs: int = 0,
    lr_gamma: float = 1.0,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.StepLR | None]:
    """The optimiser and its per-epoch schedule (``None`` when the rate is constant); call the
    schedule's ``step()`` once after every epoch."""
    opt: torch.optim.Optimizer
    if algorithm == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    elif algorithm == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        raise ValueError(f"unknown optimiser {algorithm!r}; choose from {ALGORITHMS}")
    if lr_step_epochs <= 0 or lr_gamma == 1.0:
        return opt, None
    return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=lr_step_epochs, gamma=lr_gamma)
