"""The image history pool (Shrivastava et al. 2017; CycleGAN, Zhu et al. 2017, section 4).

D is updated with a mix of the newest generated images and ones G made earlier, which damps oscillation. The pool
lives in buffers of a module (the family puts it inside its discriminator module), so a checkpoint holds it and
a resumed run continues with the same history; its random choices come from torch's global generator in a fixed
order, as exact resume requires.
"""

from __future__ import annotations

import torch
from torch import nn


class ImagePool(nn.Module):
    """``query(images)``: until ``size`` images are stored, each new image is stored and returned; afterwards, each
    is, with probability 1/2, swapped for a random stored one (which is returned instead), else returned as is."""

    def __init__(self, size: int, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *shape))  # [size, C, H, W]
        self.register_buffer("count", torch.zeros((), dtype=torch.long))  # images stored so far (<= size)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        images = images.detach()
        n = len(images)
        coin = torch.rand(n, device=images.device)  # drawn for every image, full or not: a fixed draw order
        slot = torch.randint(0, self.size, (n,), device=images.device)
        out = images.clone()
        count = int(self.count)
        for i in range(n):
            if count < self.size:  # filling up: store it, return it
                self.images[count] = images[i]
                count += 1
            elif coin[i] < 0.5:  # return an older image, keep the new one in its place
                k = int(slot[i])
                out[i] = self.images[k].to(out.dtype)
                self.images[k] = images[i]
        self.count.fill_(count)
        return out
