"""One-cycle learning rate and momentum, as fastai's `use_clr_beta=(div, pct, mom_max, mom_min)`.

Over `total` steps: the first (100 - pct)% form a triangle, lr rising linearly from lr/div to
lr and falling back to lr/div, while momentum falls from mom_max to mom_min and rises back; the
last pct% anneal lr linearly from lr/div to lr/(100 * div) at momentum mom_max.

The WGAN's critic updates per generator update (`critic_plan`), as the lesson's loop sets d_iters.
"""
# the lesson's `d_iters = 100 if (first and gen_iterations < 25) or gen_iterations % 500 == 0 else 5`,
# run as train(..., first=False); the WGAN authors' code bursts for the first 25 too
BURST, BURST_EVERY, FIRST_BURSTS = 100, 500, 0


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


def critic_plan(batches, n_critic, gen_done=0, burst=BURST):
    """([critic updates before each generator update of an epoch of `batches` real batches], generator
    updates done by its end), after `gen_done` before it: the lesson's loop, `burst` updates before the
    generator update numbered 0 mod BURST_EVERY (and the first FIRST_BURSTS), else n_critic; the
    epoch's end cuts the last short. n_critic 1 (the DCGAN) never bursts."""
    plan, left = [], batches
    while left:
        g = gen_done + len(plan)
        n = burst if n_critic > 1 and (g < FIRST_BURSTS or g % BURST_EVERY == 0) else n_critic
        plan.append(min(n, left))
        left -= plan[-1]
    return plan, gen_done + len(plan)
