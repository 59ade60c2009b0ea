"""Parts that training, the commands and the explorer share, each defined once."""

import torch

from models import rows_per_class
from train.device import unit_pixels


def test_rows_per_class_repeat_the_same_z_under_each_class() -> None:
    z = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # (N=3, latent_dim=2)
    grid_z, labels = rows_per_class(z, torch.tensor([7, 2]))
    assert torch.equal(grid_z, torch.cat([z, z]))
    assert labels.tolist() == [7, 7, 7, 2, 2, 2]


def test_unit_pixels_scale_bytes_to_the_unit_interval() -> None:
    images = torch.tensor([[[0, 255], [51, 128]]], dtype=torch.uint8)  # (N=1, 2, 2)
    x = unit_pixels(images)
    assert x.dtype == torch.float32 and x.shape == (1, 4)
    assert torch.equal(x, torch.tensor([[0, 255, 51, 128]]) / 255)
