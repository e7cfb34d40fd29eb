"""VGG-19 with batch norm (torchvision's configuration 'E'), the Animal-10N backbone of BPT-PLR.

``features``: 16 ``conv3×3 (bias) → BN → ReLU`` layers in five stages of 64/64, 128/128, 256×4, 512×4, 512×4 channels,
each stage followed by a 2×2 max-pool; then ``AdaptiveAvgPool2d(7×7)`` and flattening, so the feature vector has
512·7·7 = 25,088 values for any input of at least 32×32 (a 64×64 Animal-10N image reaches the pool as a 2×2 map,
which the adaptive pool spreads over 7×7, as torchvision does).

Initialisation as torchvision / the reference: Kaiming-normal (fan_out, ReLU) conv weights, zero conv biases,
BN weight 1 and bias 0. Only the backbone lives here: the :class:`~noisyclr.models.network.Network` wrapper adds
a single ``Linear(25088, C)`` classifier and the projector (see ``docs/methods/bpt_plr.md`` for the difference
from the reference's 25088→4096→4096→C classifier).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .staged import StagedBackbone

# torchvision's cfg 'E' in units of the first stage's width (64): 'M' is a 2x2 max-pool
_CFG_E = (1, 1, "M", 2, 2, "M", 4, 4, 4, 4, "M", 8, 8, 8, 8, "M", 8, 8, 8, 8, "M")


class VGG(StagedBackbone):
    """``(B, C, H, W)`` → ``(B, 8·width·7·7)`` features (25,088 at the standard width 64); H, W ≥ 32.

    Args:
        in_channels: image channels.
        width: channels of the first stage (64 is standard); stages use ``width × (1, 2, 4, 8, 8)``.
        pool: side of the adaptive average pool (7 as torchvision).
    """

    def __init__(self, in_channels: int = 3, width: int = 64, pool: int = 7):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in _CFG_E:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                out = int(item) * width
                layers += [nn.Conv2d(channels, out, kernel_size=3, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
                channels = out
        self.features = nn.Sequential(*layers)
        # stage k = the layers of features up to and including its k-th max-pool (five stages)
        ends = [i + 1 for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]
        self._stage_bounds = tuple(zip([0, *ends[:-1]], ends))
        self.num_stages = len(self._stage_bounds)
        self.avgpool = nn.AdaptiveAvgPool2d((pool, pool))
        self.feat_dim = channels * pool * pool
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Stage ``i`` (0-4): its conv-BN-ReLU layers and the max-pool that ends it."""
        start, stop = self._stage_bounds[i]
        for j in range(start, stop):
            x = self.features[j](x)
        return x

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(x), 1)


def vgg19_bn(in_channels: int = 3, width: int | None = None) -> VGG:
    """VGG-19-BN (cfg 'E'), 25,088-d features at width 64 (``8·width·49`` otherwise); about 20.0M parameters."""
    return VGG(in_channels, width or 64)
