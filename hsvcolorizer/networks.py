"""The paper's networks: LR-CMGN (stage 1), the pyramidal RCN and the plain
("original design") RCN (stage 2), and the two-stage model that chains them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsvcolorizer.color import resize_hs

# Every working image side must be a multiple of this: stage 1 halves the
# side twice, and the pyramid works at 1/2 and 1/4 of it.
SIDE_MULTIPLE = 4

RCN_KINDS = ("pyramid", "plain")


@dataclass
class ModelConfig:
    """Everything that defines the architecture; stored in the weights' metadata."""

    rcn: str = "pyramid"  # "pyramid" (the paper's final design) or "plain" (its original design)
    # LR-CMGN: output channels of its 12 convolutions; the layers at the listed
    # indices have stride 2, which brings the output to 1/4 of the side.
    lrcmgn_widths: list[int] = field(default_factory=lambda: [64, 128, 128, 256, 256, 512, 512, 512, 256, 256, 128, 2])
    lrcmgn_strided: list[int] = field(default_factory=lambda: [1, 3])
    # Pyramidal RCN: widths of each branch, and of the full-size head.
    rcn_branch_widths: list[int] = field(default_factory=lambda: [64, 128, 128, 128])
    rcn_fuse_width: int = 96
    rcn_head_widths: list[int] = field(default_factory=lambda: [64, 64])
    # Plain RCN: 13 convolutions at full size.
    plain_width: int = 148
    plain_depth: int = 13
    # Resize H as an angle (ours) or plainly (the paper's).
    circular_resize: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


def conv3x3_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(conv3x3(cin, cout, stride), nn.ReLU(inplace=True))


def up2x_relu(cin: int, cout: int) -> nn.Sequential:
    """Transposed convolution that doubles the side exactly."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), nn.ReLU(inplace=True))


def he_init(module: nn.Module) -> None:
    """He (Kaiming) initialisation for every (transposed) convolution, as in the paper."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(m.bias)


def _conv_stack(cin: int, widths: list[int], strided: set[int] | None = None) -> nn.Sequential:
    """ReLU convolutions through `widths`, the last one ending in tanh."""
    strided = strided or set()
    layers: list[nn.Module] = []
    for i, cout in enumerate(widths):
        stride = 2 if i in strided else 1
        if i == len(widths) - 1:
            layers += [conv3x3(cin, cout, stride), nn.Tanh()]
        else:
            layers.append(conv3x3_relu(cin, cout, stride))
        cin = cout
    return nn.Sequential(*layers)


class LRCMGN(nn.Module):
    """Low-resolution chroma map generation network (stage 1).

    In:  Bx1xHxW gray in [-1, 1], H and W multiples of 4.
    Out: Bx2x(H/4)x(W/4) (H, S) in [-1, 1].
    """

    def __init__(self, widths: list[int], strided: list[int]):
        super().__init__()
        if len(widths) != 12 or widths[-1] != 2:
            raise ValueError("LR-CMGN has 12 convolutions ending in 2 channels")
        self.body = _conv_stack(1, widths, set(strided))
        he_init(self)

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        return self.body(gray)


class PyramidRCN(nn.Module):
    """Pyramidal refinement colorization network (stage 2).

    In:  gray Bx1xHxW in [-1, 1]; stage-1 hs Bx2x(H/4)x(W/4) in [-1, 1].
    Out: Bx2xHxW (H, S) in [-1, 1].

    [gray, H, S] is resized bilinearly to 1/2 and 1/4 of the side; a branch
    of convolutions runs at each scale; the 1/4 branch is brought to 1/2 by a
    transposed convolution, the two are concatenated and a second transposed
    convolution brings them to full size, where a short head of convolutions
    ending in tanh predicts H and S. The full-size gray is concatenated before
    the head so that its edges can sharpen the chroma: the paper's figure is
    not available to say whether it did this.
    """

    def __init__(self, branch_widths: list[int], fuse_width: int, head_widths: list[int], circular: bool = True):
        super().__init__()
        self.circular = circular
        bw = branch_widths[-1]
        self.branch_mid = _relu_stack(3, branch_widths)
        self.branch_low = nn.Sequential(_relu_stack(3, branch_widths), up2x_relu(bw, bw))
        self.fuse = up2x_relu(2 * bw, fuse_width)
        self.head = _conv_stack(fuse_width + 1, head_widths + [2])
        he_init(self)

    def forward(self, gray: torch.Tensor, hs_low: torch.Tensor) -> torch.Tensor:
        height, width = gray.shape[-2:]
        mid = (height // 2, width // 2)
        low = (height // 4, width // 4)
        g_mid = F.interpolate(gray, size=mid, mode="bilinear", align_corners=False, antialias=True)
        g_low = F.interpolate(gray, size=low, mode="bilinear", align_corners=False, antialias=True)
        x_mid = torch.cat([g_mid, resize_hs(hs_low, mid, self.circular)], 1)
        x_low = torch.cat([g_low, resize_hs(hs_low, low, self.circular)], 1)
        f = torch.cat([self.branch_mid(x_mid), self.branch_low(x_low)], 1)
        return self.head(torch.cat([self.fuse(f), gray], 1))


class PlainRCN(nn.Module):
    """The paper's original refinement network: 13 convolutions at full size.

    In/out as PyramidRCN; the stage-1 H, S is enlarged to full size first.
    """

    def __init__(self, width: int, depth: int, circular: bool = True):
        super().__init__()
        self.circular = circular
        self.body = _conv_stack(3, [width] * (depth - 1) + [2])
        he_init(self)

    def forward(self, gray: torch.Tensor, hs_low: torch.Tensor) -> torch.Tensor:
        hs_full = resize_hs(hs_low, tuple(gray.shape[-2:]), self.circular)
        return self.body(torch.cat([gray, hs_full], 1))


def _relu_stack(cin: int, widths: list[int]) -> nn.Sequential:
    return nn.Sequential(*[conv3x3_relu(a, b) for a, b in zip([cin] + widths[:-1], widths)])


class TwoStageColorizer(nn.Module):
    """LR-CMGN followed by an RCN.

    In:  Bx1xHxW gray in [-1, 1], H and W multiples of SIDE_MULTIPLE.
    Out: (stage-1 Bx2x(H/4)x(W/4), refined Bx2xHxW), both (H, S) in [-1, 1].
    """

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config or ModelConfig()
        c = self.config
        if c.rcn not in RCN_KINDS:
            raise ValueError(f"unknown refinement network {c.rcn!r}; choose one of {', '.join(RCN_KINDS)}")
        self.lrcmgn = LRCMGN(c.lrcmgn_widths, c.lrcmgn_strided)
        if c.rcn == "pyramid":
            self.rcn: nn.Module = PyramidRCN(c.rcn_branch_widths, c.rcn_fuse_width, c.rcn_head_widths, c.circular_resize)
        else:
            self.rcn = PlainRCN(c.plain_width, c.plain_depth, c.circular_resize)

    def forward(self, gray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hs_low = self.lrcmgn(gray)
        return hs_low, self.rcn(gray, hs_low)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_flops(model: nn.Module, height: int, width: int) -> int:
    """Multiply-adds x 2 of every (transposed) convolution for one HxW gray input."""
    total = 0

    def hook(m: nn.Module, inputs, output):  # noqa: ANN001 - torch hook signature
        nonlocal total
        k = m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.weight.shape[1] * m.weight[0, 0].numel()
        if isinstance(m, nn.Conv2d):
            total += 2 * output.numel() * k
        else:  # transposed: every input position scatters cin x cout x k x k
            total += 2 * inputs[0].numel() * m.weight.shape[1] * m.weight[0, 0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, height, width, device=next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    return total
