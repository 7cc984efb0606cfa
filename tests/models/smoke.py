"""Shared smoke-training check for the operator models: a few Adam steps on a small synthetic
operator-learning problem must reduce the relative L2 loss."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from spectrax.train import relative_lp_loss


def synthetic_pairs(seed, num, shape, modes=3):
    """Band-limited random fields ``a`` and targets ``u = heat(a) + 0.5 sin(a)``: a smoothing
    linear part (Fourier multiplier exp(-0.02 |k|^2)) plus a pointwise nonlinearity (NumPy)."""
    d = len(shape)
    rng = np.random.default_rng(seed)
    axes = tuple(range(2, 2 + d))
    freqs = [
        np.fft.rfftfreq(n, 1 / n) if i == d - 1 else np.fft.fftfreq(n, 1 / n)
        for i, n in enumerate(shape)
    ]
    mesh = np.meshgrid(*freqs, indexing="ij")
    low = np.all([np.abs(f) < modes for f in mesh], axis=0)
    k2 = sum((2 * np.pi * f) ** 2 for f in mesh)
    x = rng.normal(size=(num, 1, *shape))
    a = np.fft.irfftn(np.fft.rfftn(x, axes=axes) * low, s=shape, axes=axes)
    a = a / a.std()
    u = np.fft.irfftn(np.fft.rfftn(a, axes=axes) * np.exp(-0.02 * k2), s=shape, axes=axes)
    u = u + 0.5 * np.sin(a)
    return jnp.asarray(a, jnp.float32), jnp.asarray(u, jnp.float32)


def loss_decreases(model, shape, *, steps=30, lr=3e-3, num_spatial_dims=None):
    """Train ``steps`` Adam steps; return (initial loss, final loss)."""
    d = num_spatial_dims or len(shape)
    a, u = synthetic_pairs(0, 8, shape)
    opt = optax.adam(lr)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = opt.init(params)

    def loss_fn(p):
        pred = jax.vmap(eqx.combine(p, static))(a)
        return relative_lp_loss(pred, u, num_spatial_dims=d)

    @jax.jit
    def step(p, s):
        loss, g = jax.value_and_grad(loss_fn)(p)
        # optax mixes Python floats and int32 step counts internally.
        with jax.numpy_dtype_promotion("standard"):
            upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s, loss, g

    losses = []
    for _ in range(steps):
        params, opt_state, loss, grads = step(params, opt_state)
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(grads))
        losses.append(float(loss))
    # the final loss from the compiled step (its loss is at the parameters passed in), not a
    # second compilation of `loss_fn`
    return losses[0], float(step(params, opt_state)[2])
