"""Architecture: the paper's parameter counts and shapes at odd sizes."""

import pytest
import torch

from hsvcolorizer.losses import colorization_loss, hue_loss
from hsvcolorizer.networks import ModelConfig, TwoStageColorizer, count_parameters


def test_parameter_counts_match_the_paper():
    full = TwoStageColorizer(ModelConfig())
    plain = TwoStageColorizer(ModelConfig(rcn="plain"))
    assert count_parameters(full) == pytest.approx(10.3e6, rel=0.15)
    assert count_parameters(full.rcn) == pytest.approx(1.5e6, rel=0.15)
    assert count_parameters(plain.rcn) == pytest.approx(2.2e6, rel=0.15)
    assert len([m for m in full.lrcmgn.modules() if isinstance(m, torch.nn.Conv2d)]) == 12
    assert len([m for m in plain.rcn.modules() if isinstance(m, torch.nn.Conv2d)]) == 13


@pytest.mark.parametrize("rcn", ["pyramid", "plain"])
def test_shapes_and_ranges(tiny_config, rcn):
    tiny_config.rcn = rcn
    model = TwoStageColorizer(tiny_config).eval()
    x = torch.rand(2, 1, 36, 52) * 2 - 1
    with torch.no_grad():
        low, full = model(x)
    assert low.shape == (2, 2, 9, 13)
    assert full.shape == (2, 2, 36, 52)
    assert full.abs().max() <= 1 and low.abs().max() <= 1


def test_hue_loss_values_from_the_paper():
    p, g = torch.tensor([-0.9]), torch.tensor([0.9])
    assert hue_loss(p, g).item() == pytest.approx(0.2)
    assert hue_loss(p, g, circular=False).item() == pytest.approx(1.8)
    assert hue_loss(torch.tensor([0.5]), torch.tensor([0.2])).item() == pytest.approx(0.3)
    assert hue_loss(torch.tensor([1.0]), torch.tensor([-1.0])).item() == pytest.approx(0.0)


def test_total_loss_weights_hue_with_lambda():
    pred = torch.zeros(1, 2, 4, 4)
    true = torch.zeros(1, 2, 4, 4)
    true[:, 0] = 0.5
    true[:, 1] = 0.25
    total, ls, lh = colorization_loss(pred, true, hue_weight=2.0)
    assert ls.item() == pytest.approx(0.25) and lh.item() == pytest.approx(0.5)
    assert total.item() == pytest.approx(0.25 + 2 * 0.5)
