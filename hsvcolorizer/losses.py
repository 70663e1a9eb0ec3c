"""The paper's loss for both stages: L = L1(S) + lambda * L_H, with a hue term
that knows H is an angle on the [-1, 1] scale, optionally weighted by the
ground truth's saturation."""

from __future__ import annotations

import torch

HUE_WEIGHTINGS = ("saturation", "none")


def hue_loss(pred_h: torch.Tensor, true_h: torch.Tensor, circular: bool = True,
             weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean hue error of two tensors of H in [-1, 1] (any equal shapes).

    circular=True is the paper's equation (2): d = |p - g|, counted as 2 - d
    when d > 1, so -0.9 against 0.9 costs 0.2, not 1.8. circular=False is a
    plain L1, kept for the ablation.

    weight (same shape, >= 0) makes it a weighted mean. With the ground
    truth's saturation as the weight, a gray pixel, whose hue is 0 (red) only
    by convention, teaches no hue at all: unweighted, every gray wall and sky
    haze pulls the network towards red, which is where v1's brown came from.
    """
    d = (pred_h - true_h).abs()
    if circular:
        d = torch.where(d <= 1.0, d, 2.0 - d)
    if weight is None:
        return d.mean()
    return (d * weight).sum() / weight.sum().clamp_min(1e-6)


def saturation_loss(pred_s: torch.Tensor, true_s: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of S in [-1, 1]."""
    return (pred_s - true_s).abs().mean()


def colorization_loss(
    pred_hs: torch.Tensor, true_hs: torch.Tensor, hue_weight: float = 1.0, circular: bool = True,
    hue_weighting: str = "none",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bx2xHxW predicted and true (H, S) in [-1, 1] -> (total, S term, H term).

    hue_weighting "saturation" weights each pixel's hue error by its true
    saturation (S in [-1, 1] mapped to [0, 1]); "none" is the paper's loss.
    """
    if hue_weighting not in HUE_WEIGHTINGS:
        raise ValueError(f"hue weighting must be one of {HUE_WEIGHTINGS}, not {hue_weighting!r}")
    ls = saturation_loss(pred_hs[:, 1], true_hs[:, 1])
    weight = (true_hs[:, 1] + 1) * 0.5 if hue_weighting == "saturation" else None
    lh = hue_loss(pred_hs[:, 0], true_hs[:, 0], circular, weight)
    return ls + hue_weight * lh, ls, lh
