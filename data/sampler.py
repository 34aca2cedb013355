"""A sampler that can resume in the middle of an epoch.

Every rank draws the same seeded permutation of the dataset for an epoch (seed + epoch), pads it
to a multiple of the world size by wrapping around, and keeps every world_size-th index from
its rank on -- the same sharding as torch's DistributedSampler. `start` skips the batches a
killed run had already trained on, so a resumed epoch sees exactly the samples it had left.
"""
from __future__ import annotations

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    def __init__(self, dataset_size: int, *, shuffle: bool = True, seed: int = 0, rank: int = 0,
                 world_size: int = 1):
        if dataset_size < 1:
            raise ValueError(f"ResumableSampler: the dataset is empty (size {dataset_size})")
        if not 0 <= rank < world_size:
            raise ValueError(f"ResumableSampler: rank {rank} outside [0, world_size={world_size})")
        self.dataset_size, self.shuffle, self.seed = dataset_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.per_rank = -(-dataset_size // world_size)  # ceil
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Epoch to draw, and how many of this rank's samples of it to skip."""
        if not 0 <= start <= self.per_rank:
            raise ValueError(f"ResumableSampler: start {start} outside [0, {self.per_rank}]")
        self.epoch, self.start = epoch, start

    def indices(self) -> list[int]:
        """This rank's whole epoch, before skipping."""
        if self.shuffle:
            order = torch.randperm(self.dataset_size,
                                   generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        else:
            order = list(range(self.dataset_size))
        padded = (order * (-(-self.per_rank * self.world_size // len(order))))[: self.per_rank * self.world_size]
        return padded[self.rank :: self.world_size]

    def __iter__(self):
        return iter(self.indices()[self.start :])

    def __len__(self) -> int:
        return self.per_rank - self.start
