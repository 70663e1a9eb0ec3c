"""The paper's networks: LR-CMGN (stage 1), the pyramidal RCN and the plain
("original design") RCN (stage 2), and the two-stage model that chains them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from hsvcolorizer.color import resize_hs
from hsvcolorizer.hints import HINT_CHANNELS

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
    # Hue as a unit vector: each network's last layer gives (cos, sin, S)
    # and H is the vector's angle, so the path from blue to red no longer
    # runs through green (v1's single tanh hue did, which drew rainbow
    # rings). The RCN then also reads stage 1's hue as (cos, sin): no seam
    # at red. False is v1's layout (one tanh H channel).
    hue_vector: bool = False
    # Dilation of each LR-CMGN convolution; dilating the 1/4-size layers
    # widens the receptive field (77 px to 253 px) at the same parameters
    # and FLOPs. Empty means all 1 (v1).
    lrcmgn_dilations: list[int] = field(default_factory=list)
    # Colour hints: LR-CMGN also reads a 4-channel hint map (hints.py:
    # cos H, sin H, S, mask) beside the gray; zeros mean "no hints".
    hint_input: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# The dilations of --dilated: the eight 1/4-size layers of LR-CMGN grow and
# shrink again so that neighbouring outputs still see overlapping inputs.
DILATED_LRCMGN = [1, 1, 1, 1, 2, 4, 8, 8, 4, 2, 1, 1]


def conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation)


def conv3x3_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(conv3x3(cin, cout, stride, dilation), nn.ReLU(inplace=True))


def up2x_relu(cin: int, cout: int) -> nn.Sequential:
    """Transposed convolution that doubles the side exactly."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), nn.ReLU(inplace=True))


def he_init(module: nn.Module) -> None:
    """He (Kaiming) initialisation for every (transposed) convolution, as in the paper."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(m.bias)


def _conv_stack(cin: int, widths: list[int], strided: set[int] | None = None,
                dilations: list[int] | None = None) -> nn.Sequential:
    """ReLU convolutions through `widths`, the last one ending in tanh."""
    strided = strided or set()
    dilations = dilations or [1] * len(widths)
    layers: list[nn.Module] = []
    for i, cout in enumerate(widths):
        stride = 2 if i in strided else 1
        if i == len(widths) - 1:
            layers += [conv3x3(cin, cout, stride, dilations[i]), nn.Tanh()]
        else:
            layers.append(conv3x3_relu(cin, cout, stride, dilations[i]))
        cin = cout
    return nn.Sequential(*layers)


def vector_to_hs(v: torch.Tensor) -> torch.Tensor:
    """Bx3xHxW (cos, sin, S) in [-1, 1] -> Bx2xHxW (H, S) in [-1, 1].

    H is the angle of (cos, sin) scaled so that -1 and 1 are both red, as
    everywhere else; the vector's length is free (a confident network makes
    it long, an unsure one short) and only its direction is the hue.
    """
    v = v.float()
    # atan2's gradient is -y/(x^2 + y^2) and x/(x^2 + y^2): 0/0 at the origin
    # (a dead, all-zero output), which some builds turn into NaN. The shift
    # keeps it finite; it turns a vector of length r by at most 1e-4/r radians
    # (0.6 degrees at r = 0.01). v2 was trained with it.
    h = torch.atan2(v[:, 1], v[:, 0] + 1e-4) / math.pi
    return torch.stack([h, v[:, 2]], 1)


def hs_features(hs: torch.Tensor, vector: bool) -> torch.Tensor:
    """Bx2xHxW (H, S) in [-1, 1] -> what an RCN reads of stage 1's chroma:
    (H, S) itself (v1), or (cos, sin, S) with no seam at red (hue_vector)."""
    if not vector:
        return hs
    angle = hs[:, 0:1] * math.pi
    return torch.cat([torch.cos(angle), torch.sin(angle), hs[:, 1:2]], 1)


class LRCMGN(nn.Module):
    """Low-resolution chroma map generation network (stage 1).

    In:  Bx1xHxW gray in [-1, 1], H and W multiples of 4 (and, with
    hint_input, a Bx4xHxW hint map).
    Out: Bx2x(H/4)x(W/4) (H, S) in [-1, 1], whichever hue layout the last
    layer has (one tanh H, or a (cos, sin) vector whose angle is H).
    """

    def __init__(self, widths: list[int], strided: list[int], hue_vector: bool = False,
                 dilations: list[int] | None = None, hint_input: bool = False):
        super().__init__()
        if len(widths) != 12 or widths[-1] != 2:
            raise ValueError("LR-CMGN has 12 convolutions ending in 2 channels")
        if dilations and len(dilations) != 12:
            raise ValueError("LR-CMGN takes one dilation per convolution (12)")
        self.hue_vector = hue_vector
        self.hint_input = hint_input
        out = widths[:-1] + [3 if hue_vector else 2]
        self.body = _conv_stack(1 + (HINT_CHANNELS if hint_input else 0), out, set(strided), dilations or None)
        he_init(self)

    def forward(self, gray: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        """hints: Bx4xHxW hint map (hints.py) when the network reads hints;
        None means none (a map of zeros)."""
        if self.hint_input:
            if hints is None:
                hints = gray.new_zeros(gray.shape[0], HINT_CHANNELS, *gray.shape[-2:])
            gray = torch.cat([gray, hints.to(gray.dtype)], 1)
        y = self.body(gray)
        return vector_to_hs(y) if self.hue_vector else y


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

    def __init__(self, branch_widths: list[int], fuse_width: int, head_widths: list[int], circular: bool = True,
                 hue_vector: bool = False):
        super().__init__()
        self.circular, self.hue_vector = circular, hue_vector
        bw = branch_widths[-1]
        cin = 4 if hue_vector else 3
        self.branch_mid = _relu_stack(cin, branch_widths)
        self.branch_low = nn.Sequential(_relu_stack(cin, branch_widths), up2x_relu(bw, bw))
        self.fuse = up2x_relu(2 * bw, fuse_width)
        self.head = _conv_stack(fuse_width + 1, head_widths + [3 if hue_vector else 2])
        he_init(self)

    def forward(self, gray: torch.Tensor, hs_low: torch.Tensor) -> torch.Tensor:
        height, width = gray.shape[-2:]
        mid = (height // 2, width // 2)
        low = (height // 4, width // 4)
        g_mid = F.interpolate(gray, size=mid, mode="bilinear", align_corners=False, antialias=True)
        g_low = F.interpolate(gray, size=low, mode="bilinear", align_corners=False, antialias=True)
        v = self.hue_vector
        x_mid = torch.cat([g_mid, hs_features(resize_hs(hs_low, mid, self.circular), v)], 1)
        x_low = torch.cat([g_low, hs_features(resize_hs(hs_low, low, self.circular), v)], 1)
        f = torch.cat([self.branch_mid(x_mid), self.branch_low(x_low)], 1)
        y = self.head(torch.cat([self.fuse(f), gray], 1))
        return vector_to_hs(y) if v else y


class PlainRCN(nn.Module):
    """The paper's original refinement network: 13 convolutions at full size.

    In/out as PyramidRCN; the stage-1 H, S is enlarged to full size first.
    """

    def __init__(self, width: int, depth: int, circular: bool = True, hue_vector: bool = False):
        super().__init__()
        self.circular, self.hue_vector = circular, hue_vector
        self.body = _conv_stack(4 if hue_vector else 3, [width] * (depth - 1) + [3 if hue_vector else 2])
        he_init(self)

    def forward(self, gray: torch.Tensor, hs_low: torch.Tensor) -> torch.Tensor:
        hs_full = resize_hs(hs_low, tuple(gray.shape[-2:]), self.circular)
        y = self.body(torch.cat([gray, hs_features(hs_full, self.hue_vector)], 1))
        return vector_to_hs(y) if self.hue_vector else y


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
        self.lrcmgn = LRCMGN(c.lrcmgn_widths, c.lrcmgn_strided, c.hue_vector, c.lrcmgn_dilations, c.hint_input)
        if c.rcn == "pyramid":
            self.rcn: nn.Module = PyramidRCN(c.rcn_branch_widths, c.rcn_fuse_width, c.rcn_head_widths,
                                             c.circular_resize, c.hue_vector)
        else:
            self.rcn = PlainRCN(c.plain_width, c.plain_depth, c.circular_resize, c.hue_vector)

    def forward(self, gray: torch.Tensor, hints: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        hs_low = self.lrcmgn(gray, hints) if hints is not None else self.lrcmgn(gray)
        return hs_low, self.rcn(gray, hs_low)


def add_hint_input(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights of a hint-free model, extended for ``hint_input``: the first
    LR-CMGN convolution gets HINT_CHANNELS more input channels with zero
    weights, so the extended model gives exactly the old one's colours
    until training teaches it to use hints (a fine-tune from v2 starts
    from v2 itself)."""
    key = "lrcmgn.body.0.0.weight"
    out = dict(state)
    w = state[key]
    out[key] = torch.cat([w, w.new_zeros(w.shape[0], HINT_CHANNELS, *w.shape[2:])], 1)
    return out


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
