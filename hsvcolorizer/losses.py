"""The paper's loss for both stages: L = L1(S) + lambda * L_H, with a hue term
that knows H is an angle on the [-1, 1] scale."""

from __future__ import annotations

import torch


def hue_loss(pred_h: torch.Tensor, true_h: torch.Tensor, circular: bool = True) -> torch.Tensor:
    """Mean hue error of two tensors of H in [-1, 1] (any equal shapes).

    circular=True is the paper's equation (2): d = |p - g|, counted as 2 - d
    when d > 1, so -0.9 against 0.9 costs 0.2, not 1.8. circular=False is a
    plain L1, kept for the ablation.
    """
    d = (pred_h - true_h).abs()
    if circular:
        d = torch.where(d <= 1.0, d, 2.0 - d)
    return d.mean()


def saturation_loss(pred_s: torch.Tensor, true_s: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of S in [-1, 1]."""
    return (pred_s - true_s).abs().mean()


def colorization_loss(
    pred_hs: torch.Tensor, true_hs: torch.Tensor, hue_weight: float = 1.0, circular: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bx2xHxW predicted and true (H, S) in [-1, 1] -> (total, S term, H term)."""
    ls = saturation_loss(pred_hs[:, 1], true_hs[:, 1])
    lh = hue_loss(pred_hs[:, 0], true_hs[:, 0], circular)
    return ls + hue_weight * lh, ls, lh
