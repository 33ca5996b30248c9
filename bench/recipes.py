"""The named configurations (`--recipe NAME`): each one literal, its values' reasons beside them.
A recipe is RunConfig settings (bench/config.py); flags and keyword arguments override them.
Measured results of each live in results/ and the README, not here."""

# `fast` and `fast_muon` are this harness's fastest entries; the others are each model family at its
# best known settings (sources in the comments).
RECIPES = {
    # The lesson's notebook: Darknet([1,2,4,6,3]), bs 256, lr 1.3, wd 1e-4, 30 epochs,
    # use_clr_beta=(20, 20, 0.95, 0.85). The RunConfig defaults but for the momentum (fastai 0.7's
    # SGD_Momentum is plain) and BatchNorm scales from U(0, 1), as its PyTorch 0.3 drew them.
    "lesson": dict(nesterov=False, model_kwargs={"blocks": [1, 2, 4, 6, 3], "nf": 32, "width": 0.5,
                                                 "bn_weight": "uniform"}),
    # Page's ResNet-9 (DAWNBench 2018, 1xV100): bs 512, label smoothing, flip TTA; 18 epochs, not
    # Page's 24 (what it reaches on cifar10-jpeg: README, "Measured so far").
    "resnet9": dict(model="resnet9", model_kwargs={"width": 1.0}, batch_size=512, epochs=18,
                    lr=0.4, div=10, pct=10, weight_decay=5e-4, label_smoothing=0.2, tta=True,
                    channels_last=True, precision="bf16"),
    # fast.ai's DAWNBench entry: wrn_22 (k=6), one-cycle, fp16 (bf16 here: no loss scaling).
    "wrn": dict(model="wrn", model_kwargs={"depth": 22, "k": 6}, batch_size=512, epochs=30,
                lr=0.8, div=20, pct=15, weight_decay=5e-4, channels_last=True, precision="bf16"),
    # The lesson's Darknet with the wide ResLayer and mixed precision.
    "darknet": dict(model="darknet", model_kwargs={"blocks": [1, 2, 4, 6, 3], "nf": 32, "width": 1.0},
                    batch_size=512, epochs=30, lr=1.3, channels_last=True, precision="bf16",
                    label_smoothing=0.1, tta=True),
    # Fastest path of the classic recipes: ResNet-9 with data on the GPU, bf16, channels_last,
    # torch.compile warmed up off the clock, label smoothing, flip TTA, large batch (its times on
    # an H200 beside airbench's: README, results/h200).
    "dawn": dict(model="resnet9", model_kwargs={"width": 1.0}, batch_size=1024, epochs=16,
                 lr=0.8, div=8, pct=10, weight_decay=5e-4, label_smoothing=0.2, tta=True,
                 channels_last=True, precision="bf16", compile=True, warmup_steps=3,
                 stop_at_target=True),
    # fast: issue #17's entry, built on airbench's published ideas (bench/fast.py, models/fastnet.py);
    # each idea is a setting that configs/fast-ablation.toml switches off one at a time.
    "fast": dict(
        model="fastnet",
        # airbench's widths are 64-256-256; block 1 at 62 keeps 10 whole epochs (480 steps of 1024)
        # within the training FLOPs of airbench's 9.9 epochs (476 steps): see README
        model_kwargs={"widths": [62, 256, 256]},
        batch_size=1024, epochs=10,      # ~10 epochs at batch 1024, as airbench
        precision="bf16", channels_last=True, compile=True, warmup_steps=3, stop_at_target=True,
        # SGD on the mean loss: airbench's lr 11.5 per 1024 summed examples over its kilostep scale
        # 1024 * (1 + 1/(1 - 0.85)) is a mean-loss lr of 1.5 (unitless)
        lr=1.5, nesterov=True, mom_max=0.85, mom_min=0.85,   # constant momentum 0.85
        # decay per step lr*wd = 0.0153 * 1024 / kilostep scale (airbench's decoupled 0.0153)
        weight_decay=1.33e-3,
        schedule="triangle", div=5, pct=23, final_div=1 / 0.07,  # lr x0.2 -> x1 at 23% of steps -> x0.07
        label_smoothing=0.2,             # as airbench (and resnet9's recipe)
        translate=2,                     # pixels: small shifts suffice for a net this small
        alt_flip=True,                   # every image seen both ways round every two epochs
        whiten=True, whiten_bias_epochs=3,   # epochs: the bias adapts early, then freezes (saves its backward)
        dirac=True, bn_weight_frozen=True,
        bn_bias_lr_scale=64.0,           # BatchNorm biases at 64x the lr, weight decay / 64
        lookahead_every=5, lookahead_decay=0.95,   # steps; EMA decay per step
        tta=True, tta_views=6,           # mirror x {none, 1 px down-right, 1 px up-left}
    ),
    # fast_muon: `fast` with Muon (Keller Jordan, 2024) for the conv filters, after the later
    # airbench record that uses it (batch 2000, 8 epochs, no lookahead). Its values in this
    # harness's terms (mean loss, logits scaled by 1/9), reasons beside each:
    "fast_muon": dict(
        model="fastnet", model_kwargs={"widths": [64, 256, 256]},   # airbench's widths
        # 25 steps x 1948 per epoch, 10 epochs: 487,000 images, within the 487,424 that airbench's
        # train94 spends on the same net (476 steps x 1024): README
        batch_size=1948, epochs=10,
        precision="bf16", channels_last=True, compile=True, warmup_steps=3, stop_at_target=True,
        muon_lr=0.24, muon_momentum=0.6,  # filters: Muon's step per unit weight norm; its momentum
        # the head: a summed-loss lr of 0.67 per 2000 images on a unit-std head scaled 1/256 moves the
        # logits as a mean-loss lr of 1.66 does on this net's default-init head scaled 1/9
        lr=1.66, nesterov=True, mom_max=0.85, mom_min=0.85,
        bn_bias_lr_scale=64.0,           # BatchNorm biases at 106 (0.053 per summed 2000)
        weight_decay=2.41e-3,            # decay per step lr*wd = 0.004 (2e-6 per image x 2000)
        schedule="triangle", div=1, pct=0, final_div=250,  # linear decay from the peak to ~0
        label_smoothing=0.2, translate=2, alt_flip=True,
        whiten=True, whiten_bias_epochs=3, dirac=True, bn_weight_frozen=True,
        lookahead_every=0,               # off: the record with Muon dropped it
        tta=True, tta_views=6,
    ),
    # A small configuration for a CPU: ResNet-9 at half width, a target a 2-core CPU reaches in
    # about ten minutes (README, "Measured so far").
    "cpu": dict(model="resnet9", model_kwargs={"width": 0.5}, batch_size=256, epochs=10,
                lr=0.4, div=10, pct=10, weight_decay=5e-4, label_smoothing=0.1, tta=True,
                precision="bf16", target=0.85, channels_last=True),
}


