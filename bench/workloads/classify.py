"""CIFAR-10 classification: the lesson's Darknet, the reference networks, or the user's own model,
trained with SGD (Nesterov) on the one-cycle schedule, evaluated on all 10,000 test images."""
import torch
import torch.distributed as dist

import models

from .. import fast, faults, flops, loader, precision
from ..config import BenchError
from ..workload import Workload, compiled, register


def evaluate_logits(net, x, tta, views=None):
    """Logits, or with test-time augmentation the sum over the views (2: the image and its mirror;
    bench/fast.py's tta_logits has the 6-view form)."""
    if not tta:
        return net(x)
    return fast.tta_logits(net, x, views or 2)


@register("classify")
class Classify(Workload):
    quality = "test_acc"
    loss_names = ("train_loss",)

    @classmethod
    def check_data(cls, cfg, ds):
        n = len(ds.train_x)
        if cfg.limit_train and cfg.limit_train > n:
            raise BenchError(f"limit-train {cfg.limit_train} exceeds the {n} train images")
        if cfg.batch_size > (cfg.limit_train or n):
            raise BenchError(f"batch size {cfg.batch_size} exceeds the {cfg.limit_train or n} train images")
        steps = cfg.epochs * ((cfg.limit_train or n) // cfg.batch_size)
        if cfg.lookahead_every > steps:  # its average would never move, and the last step restores it
            raise BenchError(f"lookahead-every {cfg.lookahead_every} exceeds the run's {steps} steps: it would end "
                             f"on the initial weights; give more epochs or set lookahead-every 0 (off)")

    def setup(self, ds):
        cfg, dev = self.cfg, self.device
        self.check_data(cfg, ds)
        train_x, train_y = ds.train_x, ds.train_y
        if cfg.limit_train:
            # The same subset for every seed: seed 0, not the run's seed, picks it.
            keep = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))[:cfg.limit_train]
            train_x, train_y = train_x[keep], train_y[keep]
        self.dtype = precision.dtype(cfg.precision)
        self.loader = loader.DeviceLoader(
            train_x, train_y, ds.mean, ds.std, cfg.batch_size, dev, self.dtype, seed=cfg.seed,
            cutout=cfg.cutout, channels_last=cfg.channels_last, rank=self.rank, world_size=self.world,
            **fast.loader_options(cfg))  # translate pixels, alternating flips
        self.test = loader.eval_batches(ds.test_x, ds.test_y, ds.mean, ds.std, cfg.eval_batch_size, dev,
                                        self.dtype, cfg.channels_last, self.rank, self.world)
        self.n_test, self.dataset, self.train_x, self.epoch = len(ds.test_x), ds, train_x, None
        self.fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = self._fresh_model(cfg.seed).to(dev, memory_format=self.fmt)
        self.net = compiled(self.model, cfg)
        self.train_net = self.net
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP
            # the whitening bias stops training partway (fast.on_epoch, and in the warm-up): DDP must
            # then look for parameters without a gradient, or its reduction never completes
            ddp = DDP(self.model, device_ids=[dev.index] if dev.type == "cuda" else None,
                      find_unused_parameters=fast.freezes_whiten_bias(cfg))
            self.train_net = compiled(ddp, cfg)
        self._flops = self._count_flops()
        self.steps_per_epoch = len(self.loader)
        self.images_per_step = self.loader.local_batch * self.world
        self.schedule = fast.schedule(cfg, cfg.epochs * self.steps_per_epoch)  # one-cycle or triangle
        self.criterion = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self._new_optimizer()
        return {"dataset": ds.name, "data_checksum": ds.checksum, "train_images": len(train_x),
                "test_images": len(ds.test_x), "param_count": models.param_count(self.model),
                "flops_per_image": self._flops[0]}

    def _count_flops(self):
        """(per image while the whitening bias trains, after it froze): freezing it drops the backward
        through the first conv, so a fast run's later epochs cost less than its first."""
        trains = flops.flops_per_image(self.model, self.cfg.channels_last)
        with fast.whiten_bias_frozen(self.model, self.cfg) as frozen:
            return trains, flops.flops_per_image(self.model, self.cfg.channels_last) if frozen else trains

    def run_fields(self, epochs):
        """flops_per_image as the mean over the epochs it finished (each trains the same images)."""
        trains, frozen = self._flops
        k = min(epochs, self.cfg.whiten_bias_epochs) if frozen != trains else epochs
        return {"flops_per_image": (k * trains + (epochs - k) * frozen) / epochs}

    def _fresh_model(self, seed):
        torch.manual_seed(seed)  # same initial weights on every device, rank and process
        model = models.create(self.cfg.model, inplace=self.cfg.inplace, **self.cfg.model_kwargs)
        fast.prepare(model, self.cfg, self.train_x, self.dataset.mean, self.dataset.std)  # whitening, dirac, BN
        return model

    def _new_optimizer(self):
        cfg = self.cfg
        # SGD, or SGD + Muon for the filters
        self.opts = fast.optimizers(self.model, cfg, self.schedule[0][0], fused=cfg.fused_on(self.device))
        self.scaler = precision.grad_scaler(self.device, cfg.precision)
        self.lookahead = fast.Lookahead.maybe(self.model, cfg, len(self.schedule))  # a weight EMA, or None

    def reset(self, seed):
        # Weights and BatchNorm buffers copied in place: the compiled graph stays valid (no recompile).
        self.model.load_state_dict(self._fresh_model(seed).state_dict())
        fast.on_epoch(self.model, self.cfg, 1, thaw=True)  # a frozen whitening bias trains again
        self.loader.seed = seed
        self.loader.reseed_flips(seed)
        self._new_optimizer()
        # The seed before may have stopped (an OOM, its time limit) between a backward and its optimizer step,
        # leaving gradients this seed's first step would add to, or inside model.eval(), before evaluate's try.
        self.model.zero_grad(set_to_none=True)
        self.model.train()

    def batches(self, epoch):
        if epoch > 0:
            self.epoch = epoch
            fast.on_epoch(self.model, self.cfg, epoch)  # the whitening bias freezes after its epochs
        return self.loader.epoch(epoch)

    def warmup(self, steps):
        super().warmup(steps)
        with fast.whiten_bias_frozen(self.model, self.cfg) as froze:  # that graph compiles off the clock too
            if froze:
                super().warmup(1)

    def step(self, batch, step):
        x, y = batch
        lr, mom = self.schedule[step or 0]
        for opt in self.opts:
            sgd = isinstance(opt, torch.optim.SGD)  # Muon keeps its own momentum
            for g in opt.param_groups:
                g["lr"] = lr * g.get("lr_scale", 1.0)  # lr_scale: BatchNorm biases, Muon's filters
                if sgd:
                    g["momentum"] = mom
        with precision.autocast(self.device, self.cfg.precision):
            loss = self.criterion(self.train_net(x), y)
        if self.fault and step is not None:
            loss = faults.inject(self.fault, step, loss)
        self.scaler.scale(loss).backward()
        for opt in self.opts:
            self.scaler.step(opt)
        self.scaler.update()
        self.model.zero_grad(set_to_none=True)
        if self.lookahead is not None and step is not None:
            self.lookahead.update(step + 1)
        return loss.detach()

    def epoch_fields(self, step):
        return {"lr": self.schedule[step - 1][0]}

    @torch.no_grad()
    def evaluate(self):
        if self.world > 1:  # ranks' BatchNorm statistics drift apart: use rank 0's everywhere
            for b in self.model.buffers():
                dist.broadcast(b, 0)
        was_training = self.model.training
        self.model.eval()
        try:  # an OOM or a stop in here must not leave the model in eval mode for the seeds after it
            correct = torch.zeros((), device=self.device, dtype=torch.int64)
            views = fast.eval_views(self.cfg, self.epoch)  # tta_last_only: one view before the last epoch
            with precision.autocast(self.device, self.cfg.precision):
                for x, y in self.test:
                    correct += (fast.tta_logits(self.net, x, views).argmax(1) == y).sum()
            if self.world > 1:
                dist.all_reduce(correct)
        finally:
            self.model.train(was_training)
        return {"test_acc": correct.item() / self.n_test}

    def checkpoint(self):
        """Only tensors and plain values, so `torch.load(..., weights_only=True)` reads it."""
        from ..config import canonical_kwargs
        cfg = self.cfg
        return {"model": cfg.model, "model_kwargs": canonical_kwargs(cfg.model, cfg.model_kwargs),
                "inplace": cfg.inplace, "precision": cfg.precision, "channels_last": cfg.channels_last,
                "tta": cfg.tta, "tta_views": fast.views(cfg), "eval_batch_size": cfg.eval_batch_size, "dataset": self.dataset.name,
                "mean": list(self.dataset.mean), "std": list(self.dataset.std),
                "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()}}
