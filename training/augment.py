"""From cached uint8 images to the network's input batch, with the recipe's light augmentation.

``to_input`` does what ``contract.imaging.preprocess`` does after resizing
(``x / scale``, then ``(x - mean) / std``), so training sees exactly the tensors
inference will. ``Augmenter`` adds the seed's photometric augmentation, drawn
per image, before normalization, on the 0..1 scale:

- random brightness / contrast (probability 0.5): ``x * (1 + c) + b`` with
  ``c, b`` uniform in +-``contrast`` / +-``brightness``, then clipped to 0..1;
- gaussian noise (probability 0.5): standard deviation uniform in 0..``noise``.

No geometric augmentation: the targets (masks, points, boxes) stay valid as they are.
"""

from __future__ import annotations

import numpy as np
import torch

from contract.manifest import Preprocessing


def to_input(images: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """N x H x W x 3 values on the 0..1 scale -> normalized N x 3 x H x W float32."""
    mean = torch.tensor(prep.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, dtype=torch.float32).view(1, 3, 1, 1)
    return (images.permute(0, 3, 1, 2) - mean) / std


def uint8_to_input(images: np.ndarray, prep: Preprocessing) -> torch.Tensor:
    """N x H x W x 3 uint8 (already at the input size) -> normalized float32 batch, no augmentation."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32) / float(prep.scale)
    return to_input(x, prep).contiguous()


class Augmenter:
    """Photometric augmentation driven by a numpy Generator (for the odds) and a torch Generator (for noise)."""

    def __init__(self, seed: int, brightness: float = 0.2, contrast: float = 0.2, noise: float = 0.04, p: float = 0.5):
        self.rng = np.random.default_rng(seed)
        self.torch_gen = torch.Generator().manual_seed(seed)
        self.brightness, self.contrast, self.noise, self.p = brightness, contrast, noise, p

    def __call__(self, images: np.ndarray, prep: Preprocessing) -> torch.Tensor:
        n = images.shape[0]
        x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32) / float(prep.scale)
        jitter = self.rng.random(n) < self.p
        gain = np.where(jitter, 1.0 + self.rng.uniform(-self.contrast, self.contrast, n), 1.0)
        bias = np.where(jitter, self.rng.uniform(-self.brightness, self.brightness, n), 0.0)
        sigma = np.where(self.rng.random(n) < self.p, self.rng.uniform(0.0, self.noise, n), 0.0)
        x = x * torch.from_numpy(gain).float().view(n, 1, 1, 1) + torch.from_numpy(bias).float().view(n, 1, 1, 1)
        if sigma.any():
            noise = torch.randn(x.shape, generator=self.torch_gen)
            x = x + noise * torch.from_numpy(sigma).float().view(n, 1, 1, 1)
        return to_input(x.clamp_(0.0, 1.0), prep).contiguous()

    def state_dict(self) -> dict:
        return {"numpy": self.rng.bit_generator.state, "torch": self.torch_gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["numpy"]
        self.torch_gen.set_state(state["torch"])
