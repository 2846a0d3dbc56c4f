"""spherevae: variational auto-encoders with hyperspherical latent spaces."""

__version__ = "0.1.0.dev0"
