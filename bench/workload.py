"""What the runner times: a workload owns its data, model(s), optimiser(s), training step,
evaluation and quality metric; the runner (bench/runner.py) owns everything that is the same for
all of them (device, clocks, warm-up, seeds, meters, signals, failures, the final write).

A workload registers itself in its own module under bench/workloads/ with `@register("name")`;
every module there is imported on first use, so adding one never edits this file.

    setup(dataset) -> dict      once per process: data on the device, model(s) built and compiled;
                                returns run-row fields (train_images, param_count, flops_per_image...)
    reset(seed)                 before each seed: initial weights, BatchNorm statistics, optimisers,
                                scalers and data order of that seed; never recompiles
    steps_per_epoch, images_per_step   set by setup (images_per_step: global images a step consumes)
    epoch_steps(epoch), epoch_images(epoch)   an epoch's steps and images (a WGAN's epochs differ)
    run_fields(epochs) -> dict  run-row fields that depend on how many epochs the run finished
    batches(epoch)              this rank's batches of an epoch (1-based; warm-up uses negative ones)
    step(batch, step) -> tensor the losses of one step, 1-D on the device (loss_names), no sync
    evaluate() -> dict          off the clock after each epoch; includes the `quality` metric
    epoch_fields(step) -> dict  extra epoch columns known without evaluating (the lr)
    warmup(steps)               untimed steps (compilation, autotuning); reset(seed) follows
    checkpoint() -> dict        what `--save` writes (None: this workload saves nothing)
"""
import importlib
import pkgutil

_REGISTRY = {}


def register(name):
    def deco(cls):
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return deco


_DISCOVERED = []


def _discover():
    from . import workloads
    for m in pkgutil.iter_modules(workloads.__path__):
        importlib.import_module(f"{workloads.__name__}.{m.name}")
    _DISCOVERED.append(True)


def names():
    # not "if the registry is empty": importing one workload's module first (bench.workloads.gan) registers
    # it, and the others would then never be found
    if not _DISCOVERED:
        _discover()
    return sorted(_REGISTRY)


def get(name):
    names()
    return _REGISTRY[name]


def compiled(module, cfg):
    """The module as the run compiles it: torch.compile in the run's compile_mode, or itself."""
    if not cfg.compile:
        return module
    import torch
    return torch.compile(module, mode=None if cfg.compile_mode == "default" else cfg.compile_mode)


class Workload:
    name = None
    quality = "test_acc"
    higher_is_better = True
    loss_names = ("train_loss",)
    distributed = True          # runs under DDP with --world-size > 1
    fusable = True              # its optimizers have the fused kernels that --fused selects
    # (field, flag, value) of run settings this workload never reads: any other value is refused,
    # so that a row never records a setting that had no effect
    unused = ()
    steps_per_epoch = 0
    images_per_step = 0

    def __init__(self, cfg, device, rank=0, world=1, fault=None):
        self.cfg, self.device, self.rank, self.world, self.fault = cfg, device, rank, world, fault

    @classmethod
    def check_data(cls, cfg, dataset):
        """Raise BenchError for a setting this data set cannot meet. The parent calls it before torchrun,
        whose ranks would each fail with it and be recorded as a crashed run."""

    def setup(self, dataset):
        raise NotImplementedError

    def reset(self, seed):
        raise NotImplementedError

    def batches(self, epoch):
        raise NotImplementedError

    def step(self, batch, step):
        raise NotImplementedError

    def evaluate(self):
        raise NotImplementedError

    def epoch_fields(self, step):
        return {}

    def epoch_steps(self, epoch):
        return self.steps_per_epoch

    def epoch_images(self, epoch):
        return self.epoch_steps(epoch) * self.images_per_step

    def run_fields(self, epochs):
        return {}

    def warmup(self, steps):
        """Train `steps` untimed steps on throwaway epochs, then evaluate once (so evaluation's
        graphs are compiled too); the runner resets the state afterwards."""
        n, epoch = 0, -1
        while n < steps:
            for batch in self.batches(epoch):
                if n == steps:
                    break
                self.step(batch, None)
                n += 1
            epoch -= 1
        self.evaluate()

    def checkpoint(self):
        return None
