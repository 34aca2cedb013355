"""data/sampler.py against its reference, torch's DistributedSampler: the same shuffled order per
(seed, epoch), the same wrap-around padding and the same shard for every rank."""

import pytest
from torch.utils.data import DistributedSampler

from data.sampler import ResumableSampler


@pytest.mark.parametrize("size, world_size", [(10, 1), (10, 4), (12, 4), (3, 8)])  # (3, 8): padding > size
@pytest.mark.parametrize("shuffle", [True, False])
def test_same_shards_as_distributed_sampler(size, world_size, shuffle):
    for epoch in (0, 5):
        for rank in range(world_size):
            ours = ResumableSampler(size, shuffle=shuffle, seed=11, rank=rank, world_size=world_size)
            ours.set_epoch(epoch)
            torch_sampler = DistributedSampler(range(size), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=11)
            torch_sampler.set_epoch(epoch)
            assert list(ours) == list(torch_sampler) and len(ours) == len(torch_sampler)


def test_resumed_epoch_continues_where_the_run_stopped():
    whole = ResumableSampler(13, seed=2, rank=1, world_size=2)
    whole.set_epoch(3)
    resumed = ResumableSampler(13, seed=2, rank=1, world_size=2)
    resumed.set_epoch(3, start=4)
    assert list(whole)[:4] + list(resumed) == list(whole) and len(resumed) == len(whole) - 4
