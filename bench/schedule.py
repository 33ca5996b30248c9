"""One-cycle learning rate and momentum, as fastai's `use_clr_beta=(div, pct, mom_max, mom_min)`.

Over `total` steps: the first (100 - pct)% form a triangle, lr rising linearly from lr/div to
lr and falling back to lr/div, while momentum falls from mom_max to mom_min and rises back; the
last pct% anneal lr linearly from lr/div to lr/(100 * div) at momentum mom_max.
"""


def one_cycle(total, lr, div=20.0, pct=20.0, mom_max=0.95, mom_min=0.85):
    """[(lr, momentum)] for steps 0 .. total-1."""
    half = int(total * (1 - pct / 100) / 2)
    out = []
    for i in range(total):
        if half and i <= half:
            f = i / half                                   # 0 -> 1 up the triangle
        elif half and i <= 2 * half:
            f = 1 - (i - half) / half                      # 1 -> 0 down it
        else:
            tail = max(total - 1 - 2 * half, 1)
            f_tail = min((i - 2 * half) / tail, 1.0)       # 0 -> 1 along the tail
            out.append((lr / div * (1 - 0.99 * f_tail), mom_max))
            continue
        out.append((lr / div * (1 + f * (div - 1)), mom_max - f * (mom_max - mom_min)))
    return out
