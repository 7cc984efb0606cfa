"""Kernels for the hot path, one package per op, each beside its plain-jnp reference."""

from spectrax.kernels import fft_conv as fft_conv_ops

__all__ = ["fft_conv_ops"]
