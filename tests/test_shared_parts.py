"""Parts that training, the commands and the explorer share, each defined once."""

import torch

from models import rows_per_class


def test_rows_per_class_repeat_the_same_z_under_each_class() -> None:
    z = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # (N=3, latent_dim=2)
    grid_z, labels = rows_per_class(z, torch.tensor([7, 2]))
    assert torch.equal(grid_z, torch.cat([z, z]))
    assert labels.tolist() == [7, 7, 7, 2, 2, 2]
