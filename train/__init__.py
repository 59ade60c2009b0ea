"""Training: data, loop, progress and PNG grids."""
