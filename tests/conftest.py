"""Shared test settings: one torch thread per test process (xdist workers run side by side on 2 cores)."""

import torch

torch.set_num_threads(1)
