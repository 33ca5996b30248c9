import torch
import torch.nn.functional as F

from bench.loader import DeviceLoader, eval_batches


def pattern(n):
    """Synthetic images (this test's own): every pixel value says where it is, so a crop or a
    flip can be recognised exactly."""
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)


def identity_loader(x, **kw):
    return DeviceLoader(x, torch.arange(len(x)), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), device="cpu", **kw)


def test_each_image_is_its_padded_crop_flipped_as_drawn():
    x = pattern(64)
    ld = identity_loader(x, batch_size=16, seed=3)
    perm, dx, dy, flip, _ = ld.draws(5)
    padded = F.pad(x.float(), (4, 4, 4, 4), mode="reflect")
    seen = 0
    for xb, yb in ld.epoch(5):
        for img, i in zip(xb, yb.tolist()):
            want = padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
            if flip[i]:
                want = want.flip(2)
            assert torch.equal(img, want)
            seen += 1
    assert seen == 64
    assert 10 < int(flip.sum()) < 54, "about half the images are flipped"
    assert len(set(zip(dx.tolist(), dy.tolist()))) > 20, "crops vary"
    assert {0, 8} & set(dx.tolist()), "offsets reach the padding"


def test_reflection_not_zero_padding():
    x = pattern(4)
    ld = identity_loader(x, batch_size=4)
    assert torch.equal(ld.padded[:, :, 4:36, 4:36], x)
    assert torch.equal(ld.padded[:, :, 3, 4:36], x[:, :, 1, :])  # reflect: row -1 mirrors row 1


def test_deterministic_by_seed_and_epoch():
    x = pattern(40)
    a = [b for b, _ in identity_loader(x, batch_size=8, seed=1).epoch(2)]
    b = [b for b, _ in identity_loader(x, batch_size=8, seed=1).epoch(2)]
    c = [b for b, _ in identity_loader(x, batch_size=8, seed=2).epoch(2)]
    d = [b for b, _ in identity_loader(x, batch_size=8, seed=1).epoch(3)]
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not all(torch.equal(p, q) for p, q in zip(a, c))
    assert not all(torch.equal(p, q) for p, q in zip(a, d))


def test_ranks_split_each_global_batch():
    """World size 2: the two ranks' batches together are exactly world size 1's batch."""
    x = pattern(48)
    one = list(identity_loader(x, batch_size=12, seed=4).epoch(0))
    r0 = list(identity_loader(x, batch_size=12, seed=4, rank=0, world_size=2).epoch(0))
    r1 = list(identity_loader(x, batch_size=12, seed=4, rank=1, world_size=2).epoch(0))
    assert len(one) == len(r0) == len(r1) == 4
    for (xa, ya), (x0, y0), (x1, y1) in zip(one, r0, r1):
        assert torch.equal(xa, torch.cat([x0, x1])) and torch.equal(ya, torch.cat([y0, y1]))


def test_last_partial_batch_is_dropped():
    ld = identity_loader(pattern(50), batch_size=16)
    assert len(ld) == 3 and sum(len(y) for _, y in ld.epoch(0)) == 48


def test_normalisation_and_cutout(small_data):
    from bench import data
    ds = data.load(str(small_data))
    ld = DeviceLoader(ds.train_x, ds.train_y, ds.mean, ds.std, 600, "cpu", seed=0)
    xb, _ = next(ld.epoch(0))
    assert abs(float(xb.mean())) < 0.05 and abs(float(xb.std()) - 1) < 0.05
    cut = DeviceLoader(ds.train_x, ds.train_y, ds.mean, ds.std, 600, "cpu", seed=0, cutout=8)
    xc, _ = next(cut.epoch(0))
    changed = (xc != xb).any(1)  # [B, 32, 32]
    assert torch.equal(xc[(xc != xb)], torch.zeros_like(xc[(xc != xb)]))
    per_image = changed.flatten(1).sum(1)
    assert per_image.max() <= 64 and per_image.float().mean() > 30


def test_eval_batches_cover_the_set_once():
    x = pattern(25)
    y = torch.arange(25)
    parts = [eval_batches(x, y, (0, 0, 0), (1, 1, 1), 10, "cpu", rank=r, world_size=2) for r in (0, 1)]
    labels = torch.cat([b[1] for p in parts for b in p])
    assert sorted(labels.tolist()) == list(range(25))


def test_gathering_several_batches_at_once_gives_the_same_batches():
    """The GPU default gathers ~8k images at once; on this CPU the default is one batch. Both must
    yield the same batches, in order, per rank, in the requested memory format, with cutout."""
    from bench.loader import default_chunk
    assert default_chunk(torch.device("cpu"), 512) == 1 and default_chunk(torch.device("cuda"), 512) == 16
    assert default_chunk(torch.device("cuda"), 16384) == 1
    x = pattern(100)
    for rank, world in ((0, 1), (0, 2), (1, 2)):
        kw = dict(batch_size=12, seed=7, rank=rank, world_size=world, cutout=6, channels_last=True)
        one = list(identity_loader(x, chunk=1, **kw).epoch(3))
        for chunk in (2, 5, 100):
            many = list(identity_loader(x, chunk=chunk, **kw).epoch(3))
            assert len(many) == len(one) == 8
            for (xa, ya), (xb, yb) in zip(one, many):
                assert torch.equal(xa, xb) and torch.equal(ya, yb)
                assert xb.is_contiguous(memory_format=torch.channels_last)
