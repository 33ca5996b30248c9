"""The lesson's GANs as timed workloads: `dcgan` and `wgan` (WORKLOAD.md's interface).

Both train models/dcgan.py's generator and critic on the CIFAR-10 train images, through the same
DeviceLoader as the classifiers, and measure quality by the Frechet distance in the features of
the harness's own classifier (bench/judge.py: "FD in <judge> features", lower is better; not FID).

  dcgan: the DCGAN paper's recipe. Adam (lr 2e-4, betas 0.5/0.999), binary cross-entropy on the
         critic's logits, one critic update then one generator update per step; the generator
         minimises -log D(G(z)) (the paper's non-saturating loss).
  wgan:  the lesson's WGAN (../shared/seeds/001_*.txt). RMSprop lr 1e-4 for both networks (the
         lesson's; the paper's 5e-5), `N_CRITIC` = 5 critic updates per generator update, each on
         its own real batch of 64, the critic's weights clipped to [-0.01, 0.01] after each update
         (the paper's Algorithm 1; the lesson clips before, the same except for the generator step
         right after). The critic minimises D(real) - D(fake), the generator D(G(z)); the
         Wasserstein estimate D(fake) - D(real) (minus the critic's loss) is the lesson's progress
         signal, recorded per epoch. The lesson's d_iters: 100 critic updates before the
         first generator update and every 500th (`critic_plan`; its `first=False`, as the lesson ran
         it: the WGAN authors' code also bursts for the first 25), the last cut short at the epoch's
         end, as the lesson's loop does. Left out: its second pass at lr 1e-5.
A step is one generator update and the critic updates before it, each on its own real batch: a
WGAN's steps differ (`epoch_steps`, `epoch_images`), images/s counts the real images the critic
consumed (so it compares with the classifiers') and `critic_steps_per_gen_step` is the run's mean.

Data: normalised to [-1, 1] (the generator's tanh range), random horizontal flips, no crop: a
reflect-padded crop puts mirrored borders into the "real" images that the generator would learn
to copy and the judge's reference statistics (unaugmented train images) do not have.

Precision: autocast in the run's dtype for both networks; fp16 uses a GradScaler per network, so an
overflow in one network's backward skips only that network's step. The judge runs in fp32.
"""
import json
import os

import torch
import torch.nn.functional as F

import models

from .. import judge as judge_mod
from .. import faults, loader, precision
from ..schedule import critic_plan
from ..config import FIELDS, BenchError

from ..workload import Workload, compiled, register

N_CRITIC = {"dcgan": 1, "wgan": 5}
CLIP = 0.01
FD_SAMPLES = 5000          # generated and real images per distance (capped by the train set)
GRID = 64                  # samples in the PNG grid, 8 x 8
_EVAL_NOISE_SEED = 20180415  # the same latent vectors every epoch and every run

# RunConfig settings for each workload: `bench run --workload wgan` starts from these.
DEFAULTS = {
    "dcgan": dict(model="dcgan", model_kwargs={"nf": 64, "nz": 100, "extra": 1}, lr=2e-4, batch_size=128,
                  epochs=10, target=100.0, weight_decay=0.0, precision="fp32", inplace=True),
    "wgan": dict(model="dcgan", model_kwargs={"nf": 64, "nz": 100, "extra": 1}, lr=1e-4, batch_size=64,
                 epochs=10, target=100.0, weight_decay=0.0, precision="fp32", inplace=True),
}


def judge_overrides():
    """Tests train a tiny judge: $BENCH_JUDGE holds JSON overrides of judge.JUDGE_RECIPE."""
    raw = os.environ.get("BENCH_JUDGE")
    if not raw:
        return {}
    try:
        out = json.loads(raw)
        if not isinstance(out, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        raise BenchError(f"BENCH_JUDGE must be a JSON object of judge recipe settings ({e})") from None
    return out


class GAN(Workload):
    quality = "fd"
    higher_is_better = False
    distributed = False
    # the classifier's loss, evaluation and SGD settings: the GANs' optimisers take no weight decay,
    # their lr is constant and their augmentation is a random flip; any other value would be recorded
    # in the row as if it had trained this run
    unused = (("tta", "--tta", False), ("label_smoothing", "--label-smoothing", 0.0), ("cutout", "--cutout", 0),
              ("weight_decay", "--wd", 0.0),
              *((name, shown, FIELDS[name].default) for name, shown in (
                  ("div", "--div"), ("pct", "--pct"), ("mom_max", "--mom-max"), ("mom_min", "--mom-min"),
                  ("nesterov", "--nesterov"), ("schedule", "schedule"), ("final_div", "final_div"),
                  ("translate", "translate"), ("alt_flip", "alt_flip"), ("whiten_bias_epochs", "whiten_bias_epochs"),
                  ("dirac", "dirac"), ("bn_weight_frozen", "bn_weight_frozen"),
                  ("bn_bias_lr_scale", "bn_bias_lr_scale"), ("lookahead_every", "lookahead_every"),
                  ("lookahead_decay", "lookahead_decay"), ("tta_views", "tta_views"),
                  ("tta_last_only", "tta_last_only"), ("muon_lr", "muon_lr"), ("muon_momentum", "muon_momentum"))))

    @staticmethod
    def check_config(cfg):
        """The judge's recipe, checked with the run's settings: a bad BENCH_JUDGE (an unknown model,
        0 epochs) otherwise surfaced after the data load, as a crashed run or a judge's traceback."""
        from ..config import validate
        try:
            validate(judge_mod.judge_config(**judge_overrides()))
        except BenchError as e:
            raise BenchError(f"the FD judge's recipe (BENCH_JUDGE={os.environ.get('BENCH_JUDGE', '')}): {e}") from None

    def __init__(self, cfg, device, rank=0, world=1, fault=None):
        if world > 1:
            raise BenchError(f"the {self.name} workload runs in one process; use --world-size 1")
        if cfg.model != "dcgan":
            raise BenchError(f"the {self.name} workload trains the dcgan model pair, not {cfg.model!r}; "
                             f"use --model dcgan")
        self.cfg, self.device, self.rank, self.world, self.fault = cfg, torch.device(device), rank, world, fault
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[cfg.precision]
        self.n_critic = N_CRITIC[self.name]
        self.autocast = dict(device_type=self.device.type, dtype=self.dtype, enabled=cfg.precision != "fp32")
        self.fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.samples = None

    # --- once per process -------------------------------------------------------------------

    def setup(self, dataset):
        cfg = self.cfg
        train_x, train_y = dataset.train_x, dataset.train_y
        if cfg.limit_train and cfg.limit_train < len(train_x):  # the runner's rule: seed 0 picks it
            keep = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))[:cfg.limit_train]
            train_x, train_y = train_x[keep], train_y[keep]
        self.loader = loader.DeviceLoader(
            train_x, train_y, (127.5,) * 3, (127.5,) * 3, cfg.batch_size, self.device,
            self.dtype, seed=cfg.seed, pad=0, flip=True, channels_last=cfg.channels_last)
        if len(self.loader) == 0:
            raise BenchError(f"batch size {cfg.batch_size} exceeds the {len(train_x)} train images")
        self.plans, self.gen_done = {}, 0
        self.steps_per_epoch = self.epoch_steps(1)  # the progress bar's; the runner asks epoch by epoch
        self.images_per_step = cfg.batch_size * self.n_critic

        self.model = self._fresh(cfg.seed).to(self.device, memory_format=self.fmt)
        self.G, self.D = self.model.generator, self.model.critic
        self.G, self.D = compiled(self.G, cfg), compiled(self.D, cfg)  # in the run's compile mode

        self.judge = judge_mod.load_or_train(dataset.source, dataset, warn=_say,
                                             **judge_overrides()).to(self.device)
        self.fd_samples = min(FD_SAMPLES, len(train_x), len(dataset.test_x))
        pick = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))[:self.fd_samples]
        self.reference = judge_mod.gaussian(self.judge.features(train_x[pick]))
        fd_real = judge_mod.frechet(judge_mod.gaussian(self.judge.features(dataset.test_x[:self.fd_samples])),
                                    self.reference)
        self.eval_noise = self.model.noise(self.fd_samples, torch.Generator().manual_seed(_EVAL_NOISE_SEED))
        self.reset(cfg.seed)
        return dict(dataset=dataset.name, data_checksum=dataset.checksum, train_images=len(train_x),
                    test_images=self.fd_samples, param_count=models.param_count(self.model),
                    gen_param_count=models.param_count(self.model.generator),
                    **self.run_fields(cfg.epochs), judge=self.judge.checksum[:16],
                    judge_recipe=json.dumps(self.judge.config, sort_keys=True),
                    judge_test_acc=self.judge.test_acc, fd_label=self.judge.label(),
                    fd_samples=self.fd_samples, fd_real_test=fd_real)

    def _fresh(self, seed):
        torch.manual_seed(seed)
        return models.create(self.cfg.model, inplace=self.cfg.inplace, **self.cfg.model_kwargs)

    # --- per seed ---------------------------------------------------------------------------

    def reset(self, seed):
        # the same parameter objects (a compiled module keeps them), fresh values and BN statistics
        self.model.load_state_dict(self._fresh(seed).state_dict())
        self.samples = None  # a seed's grid is its own last epoch's
        torch.manual_seed(seed)  # the training noise
        self.loader.seed = seed
        self.opt_g, self.opt_d = self._optimizer(self.model.generator), self._optimizer(self.model.critic)
        fp16 = self.cfg.precision == "fp16"
        self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=fp16)
        # a seed stopped mid step or mid evaluation leaves gradients, a frozen critic or eval mode behind
        self.model.zero_grad(set_to_none=True)
        self.model.critic.requires_grad_(True)
        self.model.train()

    def _optimizer(self, net):
        raise NotImplementedError

    # --- the timed loop ---------------------------------------------------------------------

    def plan(self, epoch):
        """Critic updates before each generator update of `epoch`; warm-up's (epoch < 1) never burst."""
        if epoch < 1:
            return critic_plan(len(self.loader), self.n_critic, burst=self.n_critic)[0]
        while epoch not in self.plans:  # generator updates count on over epochs, as the lesson's
            self.plans[len(self.plans) + 1], self.gen_done = critic_plan(len(self.loader), self.n_critic, self.gen_done)
        return self.plans[epoch]

    def epoch_steps(self, epoch):
        return len(self.plan(epoch))

    def epoch_images(self, epoch):
        return sum(self.plan(epoch)) * self.cfg.batch_size

    def run_fields(self, epochs):
        """The row's critic_steps_per_gen_step over the first `epochs` epochs (those a run finished)."""
        plans = [n for e in range(1, epochs + 1) for n in self.plan(e)]
        return {"critic_steps_per_gen_step": sum(plans) / len(plans)} if plans else {}

    def batches(self, epoch):
        """One list of real batches per generator update, a critic update for each."""
        it = self.loader.epoch(epoch)
        for n in self.plan(epoch):
            yield [next(it)[0] for _ in range(n)]

    def noise(self, n):
        return torch.randn(n, self.model.nz, 1, 1, device=self.device).contiguous(memory_format=self.fmt)

    def _update(self, loss, opt, scaler):
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    def _generator_step(self, loss_fn, step, fake=None):
        """One generator update; the critic's weights are frozen so no gradient is made for them."""
        self.model.critic.requires_grad_(False)
        with torch.autocast(**self.autocast):
            fake = self.G(self.noise(self.cfg.batch_size)) if fake is None else fake
            loss = loss_fn(self.D(fake).float())
        if self.fault and step is not None:  # BENCH_FAULT, as the classifiers take it
            loss = faults.inject(self.fault, step, loss)
        self._update(loss, self.opt_g, self.scaler_g)
        self.model.critic.requires_grad_(True)
        return loss.detach()

    # --- off the clock ----------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, z, batch_size=None):
        """Images on the 0..255 grid from latent vectors z, the generator in eval mode (as the lesson samples)."""
        was = self.model.training
        self.model.eval()
        out = []
        with torch.autocast(**self.autocast):
            for chunk in z.split(batch_size or self.cfg.eval_batch_size):
                out.append(judge_mod.to_pixels(self.G(chunk.to(self.device).contiguous(memory_format=self.fmt))))
        self.model.train(was)
        return torch.cat(out)

    def evaluate(self):
        images = self.generate(self.eval_noise)
        self.samples = images[:GRID].to("cpu", torch.uint8)
        fd = judge_mod.frechet(judge_mod.gaussian(self.judge.features(images)), self.reference)
        return {"fd": fd}

    def checkpoint(self):
        return {"model": self.cfg.model, "model_kwargs": dict(self.cfg.model_kwargs), "workload": self.name,
                "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()}}

    def save_artifacts(self, results_dir, run_id):
        """RESULTS/samples/<run_id>.png: 8 x 8 samples of the last evaluated epoch (fixed noise)."""
        if self.samples is None:
            return None
        return save_grid(self.samples, results_dir, run_id)


@register("dcgan")
class DCGANWorkload(GAN):
    name = "dcgan"
    loss_names = ("critic_loss", "gen_loss")
    defaults = {"workload": "dcgan", **DEFAULTS["dcgan"]}

    def _optimizer(self, net):
        return torch.optim.Adam(net.parameters(), lr=self.cfg.lr, betas=(0.5, 0.999),
                                fused=self.cfg.fused_on(self.device) or None)  # fused: no fp16 sync

    def step(self, batch, step):
        real = batch[0]
        n = real.shape[0]
        with torch.autocast(**self.autocast):
            fake = self.G(self.noise(n))
            d_real, d_fake = self.D(real).float(), self.D(fake.detach()).float()
            loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                      + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        self._update(loss_d, self.opt_d, self.scaler_d)
        # the same fakes, scored by the updated critic (the usual DCGAN loop: one generator forward)
        loss_g = self._generator_step(
            lambda s: F.binary_cross_entropy_with_logits(s, torch.ones_like(s)), step, fake)
        return torch.stack([loss_d.detach(), loss_g])


@register("wgan")
class WGANWorkload(GAN):
    name = "wgan"
    loss_names = ("critic_loss", "gen_loss", "wasserstein_estimate")
    defaults = {"workload": "wgan", **DEFAULTS["wgan"]}
    fusable = False  # the harness's RMSprop: --fused would change nothing but the row

    def _optimizer(self, net):
        return precision.RMSprop(net.parameters(), lr=self.cfg.lr)  # torch's, but no fp16 sync

    def step(self, batch, step):
        losses = []
        for real in batch:
            with torch.autocast(**self.autocast):
                with torch.no_grad():
                    fake = self.G(self.noise(real.shape[0]))
                loss_d = self.D(real).float().mean() - self.D(fake).float().mean()
            self._update(loss_d, self.opt_d, self.scaler_d)
            with torch.no_grad():  # the WGAN's Lipschitz constraint: a small box of weights
                torch._foreach_clamp_min_(self.critic_params, -CLIP)
                torch._foreach_clamp_max_(self.critic_params, CLIP)
            losses.append(loss_d.detach())
        loss_g = self._generator_step(lambda s: s.mean(), step)
        critic = torch.stack(losses).mean()
        return torch.stack([critic, loss_g, -critic])

    def reset(self, seed):
        super().reset(seed)
        self.critic_params = list(self.model.critic.parameters())


def save_grid(images, results_dir, run_id, nrow=8):
    """uint8 [N, 3, 32, 32] -> an nrow-wide PNG at RESULTS/samples/<run_id>.png, written atomically."""
    import warnings

    # torchvision 0.29 deprecates its codecs for TorchCodec; encode_png still works (as in bench/data.py)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision.io")
    from torchvision.io import encode_png
    from torchvision.utils import make_grid

    from ..results import safe_name

    grid = make_grid(images.to(torch.uint8), nrow=nrow, padding=2, pad_value=255)
    d = os.path.join(results_dir, "samples")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"{safe_name(run_id)}.png")
    tmp = os.path.join(d, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(encode_png(grid).numpy().tobytes())
    os.replace(tmp, path)
    return path


def _say(msg):
    from ..ui import say
    say(msg)
