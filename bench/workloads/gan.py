"""The lesson's GANs: bench/gan.py defines them; importing it registers `dcgan` and `wgan`."""
from ..gan import DCGANWorkload, WGANWorkload  # noqa: F401
