"""Receptive fields (rows of W, or of W's gradient) drawn as colour tiles.

Each row of ``W`` ``[N, D = size*size*3]`` is a colour patch (`lifcore.data` layout).
Tiles are scaled one by one, symmetrically around mid-grey, so that the sign and the
colour of a filter show and its norm does not (the slides' `W_grad` images are drawn
the same way).
"""
from __future__ import annotations

import math

import numpy as np
import torch


def tile_image(weights: torch.Tensor, patch_size: int, columns: int | None = None, count: int | None = None,
               gap: int = 1) -> np.ndarray:
    """An RGB image ``[H, W, 3]`` in [0, 1] with one tile per row of `weights` (the first `count`)."""
    w = torch.as_tensor(weights).detach().double().cpu()
    if w.dim() != 2 or w.shape[1] != 3 * patch_size**2:
        raise ValueError(f"weights must be [N, 3 * patch_size^2 = {3 * patch_size**2}]; got {tuple(w.shape)}")
    if count is not None:
        w = w[:count]
    n = w.shape[0]
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    scale = w.abs().amax(1, keepdim=True).clamp_min(1e-12)
    tiles = (0.5 + 0.5 * w / scale).reshape(n, patch_size, patch_size, 3).numpy()
    step = patch_size + gap
    image = np.ones((rows * step - gap, columns * step - gap, 3))
    for k in range(n):
        r, c = divmod(k, columns)
        image[r * step:r * step + patch_size, c * step:c * step + patch_size] = tiles[k]
    return image
