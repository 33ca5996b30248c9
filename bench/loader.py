"""The training and test batches, made on the training device with tensor ops.

The whole train set lives on the device as uint8, reflection-padded once. Each epoch draws,
from a CPU generator seeded by (seed, epoch), a permutation, a crop offset per image and a
flip bit per image; a batch is then one gather (crop and flip in the same index) and one
normalisation, done for `chunk` batches at a time (see `default_chunk`). Because the randomness
comes from the CPU generator, a seed gives the same batches on any device, world size and chunk.

Under DDP every rank draws the same permutation and takes its own slice of each global batch,
so an epoch sees the same images as on one process. The last partial batch is dropped.
"""
import torch
import torch.nn.functional as F


FLIP_STREAM = 1 << 40  # fast: generator seed offset of the alternating flips' base bits


def default_chunk(device, local_batch):
    """Batches augmented per gather. On a GPU a one-batch gather is bound by its dozen or so small
    kernel launches: on an H200, 16 batches of 512 per gather ran 5.2x faster (6.6M vs 1.3M
    images/s). On a CPU one batch at a time stays in cache: 70k vs 38k images/s here.
    benchmarks/pipeline.py measures both side by side."""
    return max(1, 8192 // local_batch) if device.type == "cuda" else 1


class DeviceLoader:
    def __init__(self, x, y, mean, std, batch_size, device, dtype=torch.float32, seed=0,
                 pad=4, flip=True, cutout=0, channels_last=False, rank=0, world_size=1, chunk=None,
                 flip_mode="random"):
        self.batch_size, self.seed, self.pad, self.flip, self.cutout = batch_size, seed, pad, flip, cutout
        # fast: "alternate" flips image i in epoch e iff base_i XOR (e is even), base_i one bit per
        # image drawn once from a generator seeded by the run's seed alone (FLIP_STREAM + seed, a
        # value no (seed, epoch) generator uses): the same seed gives the same flips anywhere
        self.flip_mode, self.n = flip_mode, len(x)
        self.reseed_flips(seed)
        self.rank, self.world_size, self.dtype = rank, world_size, dtype
        self.device = torch.device(device)
        self.n = len(x)
        self.local_batch = batch_size // world_size
        self.chunk = chunk or default_chunk(self.device, self.local_batch)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        x = x.to(self.device)
        # reflect-pad needs floats: pad once, in chunks to bound the temporary, and keep uint8
        self.padded = torch.cat([F.pad(c.float(), (pad,) * 4, mode="reflect").to(torch.uint8)
                                 for c in x.split(4096)]) if pad else x
        self.y = y.to(self.device)
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1)
        self.ar = torch.arange(32, device=self.device)

    def reseed_flips(self, seed):
        """The alternating flips' base bits of `seed` (a new seed in the same process draws its own)."""
        self.alt_base = torch.randint(0, 2, (self.n,), generator=torch.Generator().manual_seed(
            FLIP_STREAM + seed)).bool() if self.flip_mode == "alternate" else None

    def __len__(self):
        return self.n // self.batch_size

    def draws(self, epoch):
        """The epoch's random choices (CPU generator), as device tensors."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(self.n, generator=g)
        dx = torch.randint(0, 2 * self.pad + 1, (self.n,), generator=g)
        dy = torch.randint(0, 2 * self.pad + 1, (self.n,), generator=g)
        flip = torch.randint(0, 2, (self.n,), generator=g).bool() & self.flip
        cut = torch.randint(0, 32, (self.n, 2), generator=g)
        if self.alt_base is not None:  # fast: alternating flips (drawn bits above still consumed: same stream)
            flip = (self.alt_base ^ (epoch % 2 == 0)) & self.flip
        return [t.to(self.device, non_blocking=True) for t in (perm, dx, dy, flip, cut)]

    def epoch(self, epoch):
        """This rank's batches of `epoch`; `chunk` batches are augmented at a time, yielded as views."""
        perm, dx, dy, flip, cut = self.draws(epoch)
        lb, steps = self.local_batch, len(self)
        # batch b of rank r is perm[b * batch_size + r * lb:][:lb]
        order = perm[:steps * self.batch_size].view(steps, self.world_size, lb)[:, self.rank]
        for first in range(0, steps, self.chunk):
            idx = order[first:first + self.chunk].reshape(-1)
            x, y = self.augment(idx, dx[idx], dy[idx], flip[idx], cut[idx]), self.y[idx]
            for b in range(len(idx) // lb):
                yield x[b * lb:(b + 1) * lb], y[b * lb:(b + 1) * lb]

    def augment(self, idx, dx, dy, flip, cut):
        rows = (dy[:, None] + self.ar)[:, None, :, None]
        cols = torch.where(flip[:, None], 31 - self.ar, self.ar) + dx[:, None]
        c = torch.arange(3, device=self.device)[None, :, None, None]
        x = self.padded[idx[:, None, None, None], c, rows, cols[:, None, None, :]]
        x = self.normalise(x)
        if self.cutout:  # a cutout x cutout square of zeros (the mean, after normalising)
            lo = cut - self.cutout // 2
            inside = (self.ar[None, None] >= lo[:, :, None]) & (self.ar[None, None] < lo[:, :, None] + self.cutout)
            x = x.masked_fill(inside[:, None, 0, :, None] & inside[:, None, 1, None, :], 0)
        return x.contiguous(memory_format=self.memory_format)  # masked_fill does not keep channels_last

    def normalise(self, x):
        x = (x.float() - self.mean) / self.std
        return x.to(self.dtype).contiguous(memory_format=self.memory_format)


def eval_batches(x, y, mean, std, batch_size, device, dtype=torch.float32, channels_last=False,
                 rank=0, world_size=1):
    """The test set normalised once on the device, as a list of batches; this rank's share."""
    device = torch.device(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    share = torch.arange(len(x)).tensor_split(world_size)[rank]
    out = []
    for chunk in share.split(batch_size):
        xb = ((x[chunk].to(device).float() - m) / s).to(dtype).contiguous(memory_format=fmt)
        out.append((xb, y[chunk].to(device)))
    return out
