"""Parameter updates of DSDPG's networks at a small per-tensor cost: Adam's default options and the Polyak averages.

At the small networks of the quickstart an update's time goes to the number of tensor operations more than to
arithmetic, and Adam and the target updates touch every parameter tensor one by one. This module owns:

- :func:`default_adam_kwargs`: ``fused=True`` where the installed torch has a fused Adam for the device (CPU since
  torch 2.4), else ``foreach=True``; the same arithmetic as the textbook Adam, up to round-off;
- :func:`polyak_update`: the Polyak average of target networks (TD3's ``tau``) as two ``foreach`` operations over
  all tensors, with the same arithmetic as Stable-Baselines3's loop over tensors (bitwise).
"""

from collections.abc import Iterable
from functools import cache
from typing import Any

import torch as th


@cache
def _fused_adam_supported(device_type: str) -> bool:
    """Whether torch's fused Adam accepts a parameter of this device type."""
    try:
        th.optim.Adam([th.zeros(1, device=device_type, requires_grad=True)], fused=True)
    except (RuntimeError, ValueError, TypeError):
        return False
    return True


def default_adam_kwargs(device: th.device | str) -> dict[str, Any]:
    """``{"fused": True}`` where torch has a fused Adam for ``device``, else ``{"foreach": True}``."""
    return {"fused": True} if _fused_adam_supported(th.device(device).type) else {"foreach": True}


def polyak_update(params: Iterable[th.Tensor], target_params: Iterable[th.Tensor], tau: float) -> None:
    """``target <- (1 - tau) * target + tau * param`` for every pair of tensors, in place, without autograd."""
    params, target_params = list(params), list(target_params)
    if len(params) != len(target_params):
        raise ValueError(f"polyak_update: {len(params)} parameters against {len(target_params)} target parameters.")
    if not params:
        return
    with th.no_grad():
        targets = [target.data for target in target_params]
        th._foreach_mul_(targets, 1.0 - tau)
        th._foreach_add_(targets, [param.data for param in params], alpha=tau)
