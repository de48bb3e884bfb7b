"""``torchrun --nproc_per_node N benchmarks/sharded_knn_check.py``: sharded kNN on N GPUs equals one GPU.

Every rank builds the same features on its own GPU, searches its slice of the rows with
:func:`labelrefine.nn.sharded_knn` (NCCL), and rank 0 compares the gathered graph with
``knn`` on one GPU and prints both times. Exit status 1 if the graphs differ.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

from labelrefine.neighbors import knn
from labelrefine.nn import sharded_knn


def main() -> int:
    rank = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl")
    feats = torch.from_numpy(np.random.default_rng(0).normal(size=(200_000, 256)).astype(np.float32)).cuda()
    torch.cuda.synchronize()
    start = time.perf_counter()
    graph = sharded_knn(feats, 15, backend="torch")
    sharded = time.perf_counter() - start
    status = 0
    if rank == 0:
        start = time.perf_counter()
        single = knn(feats, 15, backend="torch")
        one = time.perf_counter() - start
        same = np.array_equal(graph.indices, single.indices)
        gpus = dist.get_world_size()
        print(f"N = 200,000 x 256, k = 15: {gpus} GPUs {sharded:.2f} s, one GPU {one:.2f} s; equal: {same}")
        status = 0 if same else 1
    dist.destroy_process_group()
    return status


if __name__ == "__main__":
    sys.exit(main())
