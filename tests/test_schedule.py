import pytest

from bench.schedule import one_cycle


def test_lesson_schedule_corners():
    total, lr = 1000, 1.3
    s = one_cycle(total, lr, div=20, pct=20, mom_max=0.95, mom_min=0.85)
    half = int(total * 0.8 / 2)  # 400 steps up, 400 down, 200 of tail
    assert len(s) == total
    assert s[0] == pytest.approx((lr / 20, 0.95))
    assert s[half] == pytest.approx((lr, 0.85))
    assert s[2 * half] == pytest.approx((lr / 20, 0.95))
    assert s[-1] == pytest.approx((lr / 20 / 100, 0.95))
    assert max(l for l, _ in s) == pytest.approx(lr)
    assert min(m for _, m in s) == pytest.approx(0.85)


def test_shape_is_up_down_then_anneal():
    s = one_cycle(500, 1.0, div=10, pct=10)
    lrs, moms = [l for l, _ in s], [m for _, m in s]
    half = int(500 * 0.9 / 2)
    assert all(a < b for a, b in zip(lrs[:half], lrs[1:half + 1]))
    assert all(a > b for a, b in zip(lrs[half:2 * half], lrs[half + 1:2 * half + 1]))
    assert all(a > b for a, b in zip(lrs[2 * half:-1], lrs[2 * half + 1:]))
    # momentum mirrors the learning rate in the triangle and stays high in the tail
    assert all(a > b for a, b in zip(moms[:half], moms[1:half + 1]))
    assert set(moms[2 * half:]) == {0.95}


def test_no_tail_and_tiny_runs():
    s = one_cycle(100, 2.0, div=4, pct=0)
    assert s[50] == pytest.approx((2.0, 0.85)) and s[0][0] == pytest.approx(0.5)
    assert len(one_cycle(1, 1.0)) == 1 and len(one_cycle(3, 1.0)) == 3
