"""2D Darcy flow -∇·(a ∇u) = f on the unit square, u = 0 on the boundary: a finite-volume
solver (preconditioned conjugate gradients) and the FNO benchmark data."""

from __future__ import annotations

import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from spectrax._checks import (
    broadcast_leading,
    check_key,
    check_positive_float,
    check_positive_int,
    check_real_float,
    compute_dtype,
    result_dtype,
)
from spectrax.data._grf import _check_params, grf_neumann

__all__ = ["darcy_dataset", "darcy_operator", "darcy_solve"]

# Relative residual reached by default, by the dtype of the solve.
_DEFAULT_TOL = {jnp.dtype(jnp.float32): 1e-5, jnp.dtype(jnp.float64): 1e-11}


FACE_MEANS = ("harmonic", "arithmetic")


def _face(a, b, face_mean: str):
    if face_mean == "harmonic":
        # 2 a b / (a + b), without forming a b: in float32 it underflows to 0 for a, b below
        # about 1e-19 and overflows above 1e19, turning a merely rescaled problem into NaN.
        return 2.0 * a * (b / (a + b))
    return 0.5 * (a + b)


def _check_face_mean(face_mean) -> str:
    if face_mean not in FACE_MEANS:
        raise ValueError(f"`face_mean` must be one of {FACE_MEANS}; got {face_mean!r}.")
    return face_mean


def _apply(a, u_int, face_mean: str = "harmonic"):
    """The 5-point finite-volume operator at the interior nodes.

    ``a``: (s, s) node values; ``u_int``: (s-2, s-2) interior values (zero Dirichlet data).
    Face conductivities are the harmonic means of the two adjacent nodes (the flux-continuous
    choice for piecewise-constant coefficients) or their arithmetic means (``face_mean``).
    """
    s = a.shape[-1]
    h2 = jnp.asarray((s - 1) ** 2, a.dtype)
    u = jnp.pad(u_int, 1)
    flux_x = _face(a[1:, :], a[:-1, :], face_mean) * (u[1:, :] - u[:-1, :])
    flux_y = _face(a[:, 1:], a[:, :-1], face_mean) * (u[:, 1:] - u[:, :-1])
    div = (flux_x[1:, 1:-1] - flux_x[:-1, 1:-1]) + (flux_y[1:-1, 1:] - flux_y[1:-1, :-1])
    return -div * h2


def _apply_abs(a, v, face_mean: str = "harmonic"):
    """``|A| v`` for the operator of :func:`_apply` and ``v >= 0`` (all stencil weights taken
    positive): ``eps * |A| |u|`` bounds the round-off of ``A u`` and of storing ``u``."""
    s = a.shape[-1]
    h2 = jnp.asarray((s - 1) ** 2, a.dtype)
    v = jnp.pad(v, 1)
    sum_x = _face(a[1:, :], a[:-1, :], face_mean) * (v[1:, :] + v[:-1, :])
    sum_y = _face(a[:, 1:], a[:, :-1], face_mean) * (v[:, 1:] + v[:, :-1])
    return h2 * ((sum_x[1:, 1:-1] + sum_x[:-1, 1:-1]) + (sum_y[1:-1, 1:] + sum_y[1:-1, :-1]))


def _dst1(x, axis: int):
    """Unnormalised DST-I along ``axis``: X_k = sum_j x_j sin(pi j k / (m + 1)), j, k = 1..m,
    from the FFT of the odd extension of length 2 (m + 1)."""
    x = jnp.moveaxis(x, axis, -1)
    zero = jnp.zeros(x.shape[:-1] + (1,), x.dtype)
    ext = jnp.concatenate([zero, x, zero, -x[..., ::-1]], axis=-1)
    m = x.shape[-1]
    out = -jnp.imag(jnp.fft.rfft(ext)[..., 1 : m + 1]) / 2
    return jnp.moveaxis(out, -1, axis)


def _laplacian_inverse(s: int, dtype):
    """Inverse of the constant-coefficient 5-point Dirichlet Laplacian on the (s-2)^2 interior,
    diagonalised by DST-I: the preconditioner. With it the conjugate-gradient iteration count
    depends on max(a) / min(a) only, not on the grid."""
    m = s - 2
    h2 = (s - 1) ** 2
    p = np.arange(1, m + 1)
    lam1 = 4 * h2 * np.sin(p * np.pi / (2 * (m + 1))) ** 2
    inv = (2.0 / (m + 1)) ** 2 / (lam1[:, None] + lam1[None, :])
    inv = jnp.asarray(inv, dtype)

    def apply(r):
        return _dst1(_dst1(_dst1(_dst1(r, 0), 1) * inv, 0), 1)

    return apply


def _pcg_one(a, f_int, tol: float, max_iter: int, face_mean: str = "harmonic"):
    s = a.shape[-1]
    precond = _laplacian_inverse(s, a.dtype)
    b = f_int
    b_norm2 = jnp.vdot(b, b)
    tol2 = jnp.asarray(tol**2, a.dtype) * b_norm2

    def cond(state):
        _, r, _, _, _, it = state
        return jnp.logical_and(jnp.vdot(r, r) > tol2, it < max_iter)

    def body(state):
        x, r, z, p, rz, it = state
        ap = _apply(a, p, face_mean)
        alpha = rz / jnp.vdot(p, ap)
        x = x + alpha * p
        r = r - alpha * ap
        z = precond(r)
        rz_new = jnp.vdot(r, z)
        p = z + (rz_new / rz) * p
        return x, r, z, p, rz_new, it + 1

    x0 = jnp.zeros_like(b)
    z0 = precond(b)
    state = (x0, b, z0, z0, jnp.vdot(b, z0), jnp.asarray(0, jnp.int32))
    x, r, _, _, _, it = jax.lax.while_loop(cond, body, state)
    # Convergence record, relative to ||b|| (f = 0 gives u = 0 and zeros here).
    b_norm = jnp.sqrt(b_norm2)
    b_norm = jnp.where(b_norm > 0, b_norm, jnp.ones_like(b_norm))
    # the most round-off can explain: one eps for storing u, one for evaluating A u - b
    eps2 = jnp.asarray(2 * jnp.finfo(a.dtype).eps, a.dtype)
    round_off = eps2 * jnp.linalg.norm(_apply_abs(a, jnp.abs(x), face_mean) + jnp.abs(b))
    info = {
        "iterations": it,
        # the residual the iteration tracks (recursively updated): > tol only if max_iter hit
        "residual": jnp.sqrt(jnp.vdot(r, r)) / b_norm,
        # the residual of the returned u, evaluated anew
        "true_residual": jnp.linalg.norm(_apply(a, x, face_mean) - b) / b_norm,
        "round_off": round_off / b_norm,
    }
    return jnp.pad(x, 1), info


def _check_tol(tol) -> float:
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)):
        raise TypeError(f"`tol` must be a Python float; got {type(tol).__name__}.")
    if not (0 < tol < 1 and math.isfinite(tol)):
        raise ValueError(f"`tol` must be a finite relative residual with 0 < tol < 1; got {tol}.")
    return float(tol)


def _check_converged(info, tol: float, max_iter: int, lead: tuple, contrast, what: str, fix: str):
    """After an eager solve: raise if the iteration cap came first, warn if the returned u's
    residual is far above ``tol`` beyond round-off. ``info`` holds one entry per problem (the
    problems of shape ``lead``); ``contrast(i)`` is max(a) / min(a) of problem ``i``."""
    info = {k: np.asarray(v).reshape(-1) for k, v in info.items()}
    residual, true = info["residual"], info["true_residual"]

    def where(mask):
        idx = np.flatnonzero(mask)
        if not lead:
            return "", idx[0]
        shown = [tuple(int(j) for j in np.unravel_index(i, lead)) for i in idx[:5]]
        shown = ", ".join(str(i[0] if len(i) == 1 else i) for i in shown)
        more = f" and {idx.size - 5} more" if idx.size > 5 else ""
        return f" for {idx.size} of {residual.size} {what} ({shown}{more})", idx[0]

    stalled = ~(residual <= tol)  # NaN (an overflow) counts as stalled
    if np.any(stalled):
        text, i = where(stalled)
        if not np.isfinite(residual[i]):
            # the loop stops at a NaN residual (iterations < max_iter); more would not help
            raise RuntimeError(
                f"the Darcy solve broke down{text}: the conjugate-gradient residual is "
                f"{residual[i]} after {int(info['iterations'][i])} iterations "
                f"(max_iter={max_iter}): the iteration left the {residual.dtype} range (u "
                f"grows like f / a; max(a) / min(a) = {contrast(i):.3g}), which more "
                f"iterations do not fix. Rescale `a` and `f` towards 1, or solve in float64 "
                f"(jax.enable_x64)."
            )
        raise RuntimeError(
            f"the Darcy solve did not converge{text}: after max_iter={max_iter} "
            f"conjugate-gradient iterations the relative residual ||A u - f|| / ||f|| is "
            f"{residual[i]:.3g} (true {true[i]:.3g}), above tol={tol:g}; the coefficient "
            f"contrast max(a) / min(a) is {contrast(i):.3g} (the iteration count grows like its "
            f"square root). {fix}"
        )
    drifted = ~(true <= 10 * tol + info["round_off"])
    if np.any(drifted):
        text, i = where(drifted)
        warnings.warn(
            f"the Darcy solve met tol={tol:g} on its recursively updated residual{text}, but "
            f"the residual ||A u - f|| / ||f|| of the returned u is {true[i]:.3g}, above "
            f"10 * tol plus the round-off bound {info['round_off'][i]:.2e}: accumulated "
            f"rounding errors of a high-contrast problem (max(a) / min(a) = {contrast(i):.3g}). "
            f"The solution may still be accurate; darcy_solve in float64 (jax.enable_x64) tells.",
            RuntimeWarning,
            stacklevel=3,
        )


@functools.partial(jax.jit, static_argnames=("tol", "max_iter", "face_mean"))
def _solve(a, f, tol, max_iter, face_mean):
    s = a.shape[-1]
    lead = a.shape[:-2]
    a_flat = a.reshape((-1, s, s))
    f_flat = f.reshape((-1, s, s))[:, 1:-1, 1:-1]
    u, info = jax.vmap(lambda ai, fi: _pcg_one(ai, fi, tol, max_iter, face_mean))(a_flat, f_flat)
    return u.reshape(lead + (s, s)), info


def _check_grid(name: str, x) -> None:
    check_real_float(name, x)
    if x.ndim < 2 or x.shape[-1] != x.shape[-2] or x.shape[-1] < 3:
        raise ValueError(
            f"`{name}` must have shape (*batch, s, s) with s >= 3; got {name}.shape={x.shape}."
        )


def _check_positive_coefficient(a) -> None:
    """ValueError naming ``a`` unless every node value is finite and > 0 (NaN included): the
    equation is elliptic only for 0 < a < inf; a zero, NaN or inf ``a`` gave a NaN residual
    reported as non-convergence, and a sign change made the system indefinite."""
    # one scalar to the host; the whole `a` only to report
    if bool(jnp.logical_and(jnp.min(a) > 0, jnp.max(a) < jnp.inf)):
        return
    values = np.asarray(a, np.float64)
    bad = ~((values > 0) & np.isfinite(values))
    if np.any(bad):
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"`a` must be positive and finite at every node (the equation is elliptic only for "
            f"0 < a < inf); got a{list(where)} = {values[where]:g} ({int(bad.sum())} of "
            f"{values.size} nodes not in (0, inf))."
        )


def _check_finite_rhs(f) -> None:
    """ValueError naming ``f`` unless it is finite at every interior node (its boundary entries
    are ignored): a NaN or inf ran ``max_iter`` iterations into a misleading "did not converge"."""
    interior = f[..., 1:-1, 1:-1]
    if bool(jnp.all(jnp.isfinite(interior))):  # one scalar to the host; the rest to report
        return
    bad = ~np.isfinite(np.asarray(interior, np.float64))
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    node = [*where[:-2], where[-2] + 1, where[-1] + 1]
    raise ValueError(
        f"`f` must be finite at every interior node; got f{node} = "
        f"{float(np.asarray(f)[tuple(node)])} ({int(bad.sum())} of {bad.size} interior nodes "
        f"not finite)."
    )


def darcy_operator(
    a: Float[Array, "*Ba X Y"],
    u: Float[Array, "*Bu X Y"],
    *,
    face_mean: str = "harmonic",
) -> Float[Array, "*B X Y"]:
    """The discrete operator -∇·(a ∇u) of :func:`darcy_solve` at the interior nodes.

    Args:
        a: positive coefficient at the ``s x s`` nodes ``(i, j) / (s - 1)``.
        u: values at the same nodes; the boundary values are taken as zero.
        face_mean: face conductivities from the two adjacent nodes, ``"harmonic"`` or
            ``"arithmetic"`` (as :func:`darcy_solve`).

    Returns:
        Shape ``(*batch, s, s)``: the 5-point finite-volume operator at interior nodes, zero
        on the boundary. ``darcy_operator(a, u) - f`` is the discrete residual.
    """
    _check_grid("a", a)
    _check_grid("u", u)
    face_mean = _check_face_mean(face_mean)
    if a.shape[-2:] != u.shape[-2:]:
        raise ValueError(f"`a` and `u` must be on the same grid; got {a.shape=} and {u.shape=}.")
    s = a.shape[-1]
    dtype = compute_dtype(a.dtype, u.dtype)
    lead = broadcast_leading("a", a.shape[:-2], "u", u.shape[:-2])
    a_flat = jnp.broadcast_to(a.astype(dtype), lead + (s, s)).reshape((-1, s, s))
    u_flat = jnp.broadcast_to(u.astype(dtype), lead + (s, s)).reshape((-1, s, s))[:, 1:-1, 1:-1]
    out = jax.vmap(lambda ai, ui: jnp.pad(_apply(ai, ui, face_mean), 1))(a_flat, u_flat)
    return out.reshape(lead + (s, s))


def darcy_solve(
    a: Float[Array, "*Ba X Y"],
    f: float | np.number | Float[Array, ""] | Float[np.ndarray, ""] | Float[Array, "*Bf X Y"] = 1.0,
    *,
    tol: float | None = None,
    max_iter: int = 2000,
    face_mean: str = "harmonic",
) -> Float[Array, "*B X Y"]:
    """Solve ``-∇·(a ∇u) = f`` on the unit square with ``u = 0`` on the boundary.

    Cell-centred-flux finite volumes on the node grid ``(i, j) / (s - 1)`` (the 5-point stencil
    with harmonic means of ``a`` at the faces, second order for smooth ``a``), solved by
    conjugate gradients preconditioned with the fast (DST-I) inverse of the constant-coefficient
    Laplacian: the iteration count is bounded by ``sqrt(max a / min a)`` times a log of the
    tolerance, independent of ``s`` (for the FNO coefficient, ratio 4: 10 iterations to a
    relative error of 1e-6 in float32, at 85 and at 421 nodes alike).

    Args:
        a: coefficient at the nodes, shape ``(*batch, s, s)``, ``s >= 3``, positive and finite
            (a ValueError otherwise; under ``jit`` this is not checked and a non-positive or
            infinite ``a`` gives garbage).
        f: right-hand side, a Python or NumPy scalar, a 0-d array (JAX or NumPy, possibly
            traced: the same value at every node) or node values ``(*batch', s, s)`` whose
            leading dimensions broadcast with ``a``'s (boundary entries are ignored), finite (a
            ValueError otherwise; not checked under ``jit``). Default ``1.0`` as in the FNO
            benchmark.
        tol: relative residual ``||A u - f|| / ||f||`` at which the iteration stops,
            ``0 < tol < 1`` (default 1e-5 in float32, 1e-11 in float64). It is the residual
            the iteration updates recursively; the returned ``u``'s own residual also carries
            its round-off, up to about ``eps || |A| |u| || / ||f||`` (in float32 about 3e-4 at
            ``s = 85`` and 9e-3 at 421 for the FNO coefficient, growing like ``s^2``, while the
            relative error of ``u`` stays near 1e-7).
        max_iter: iteration cap.
        face_mean: conductivity of the face between two nodes: ``"harmonic"`` (default) mean
            of their coefficients, flux-continuous across a jump of ``a``; or ``"arithmetic"``,
            the choice of the FNO paper's MATLAB data generator (``solve_gwf``). The two agree
            to second order where ``a`` is smooth and differ by O(h) next to a jump.

    Returns:
        ``u`` at the nodes, shape ``(*broadcast batch, s, s)``, zero on the boundary. Computed
        in float64 if ``a`` or an array ``f`` (0-d included) is float64 (else float32) and
        returned in the promotion of their dtypes (``a``'s for a Python or NumPy scalar ``f``).

    Raises:
        RuntimeError: called outside ``jit``, when a problem reaches ``max_iter`` iterations
            before ``tol`` (the message gives the residual reached and the problem's index).
            A ``RuntimeWarning`` says when the iteration met ``tol`` but the returned ``u``'s
            residual is above ``10 tol`` plus its round-off bound (rounding errors of a
            high-contrast problem). Under ``jax.jit`` (or ``vmap``, ``jvp``) neither check
            can run: ``u`` is returned as computed, whether or not it converged.

    Differentiation: forward mode (``jax.jvp``, ``jax.jacfwd``) runs through the iteration;
    reverse mode (``jax.grad``) raises a ValueError, as ``lax.while_loop`` has no transpose.
    """
    _check_grid("a", a)
    # a NumPy float64 `a` is float32 outside 64-bit mode, as any input: it took the float64
    # default tol (1e-11) for a float32 solve (twice the iterations) and JAX's truncation warning
    a = jnp.asarray(a)
    if isinstance(f, (int, float, np.integer, np.floating)) and not isinstance(f, bool):
        if not math.isfinite(f):  # a NaN ran max_iter iterations into "did not converge"
            raise ValueError(f"`f` must be finite; got {f}.")
        dtype, out_dtype = compute_dtype(a.dtype), a.dtype
        f = jnp.full(a.shape[-2:], float(f), dtype)
    else:
        check_real_float("f", f)
        if f.ndim == 0:  # a 0-d array (jnp.asarray(1.0), a traced scalar): the same at every node
            f = jnp.broadcast_to(jnp.asarray(f), a.shape[-2:])
        if f.ndim < 2 or f.shape[-2:] != a.shape[-2:]:
            raise ValueError(f"`f` must end with the grid shape {a.shape[-2:]}; got {f.shape=}.")
        f = jnp.asarray(f)  # a NumPy float64 f is float32 outside 64-bit mode, as any input
        dtype, out_dtype = compute_dtype(a.dtype, f.dtype), result_dtype(a.dtype, f.dtype)
        if not isinstance(f, jax.core.Tracer):
            _check_finite_rhs(f)
    if not isinstance(a, jax.core.Tracer):
        _check_positive_coefficient(a)
    lead = broadcast_leading("a", a.shape[:-2], "f", f.shape[:-2])
    a = jnp.broadcast_to(a.astype(dtype), lead + a.shape[-2:])
    f = jnp.broadcast_to(f.astype(dtype), lead + f.shape[-2:])
    tol = _DEFAULT_TOL[jnp.dtype(dtype)] if tol is None else _check_tol(tol)
    max_iter = check_positive_int("max_iter", max_iter)
    face_mean = _check_face_mean(face_mean)
    u, info = _solve(a, f, tol, max_iter, face_mean)
    if not isinstance(u, jax.core.Tracer):

        def contrast(i):
            ai = np.asarray(a.reshape((-1,) + a.shape[-2:])[i], np.float64)
            return float(ai.max() / ai.min()) if ai.min() > 0 else float("nan")

        _check_converged(
            info,
            tol,
            max_iter,
            lead,
            contrast,
            "problems",
            "Raise `max_iter` or `tol`, or solve in float64 (jax.enable_x64).",
        )
    return u.astype(out_dtype)


@functools.partial(
    jax.jit,
    static_argnames=(
        "num_samples",
        "s_fine",
        "stride",
        "values",
        "grf",
        "tol",
        "max_iter",
        "batch_size",
        "face_mean",
    ),
)
def _generate(key, num_samples, s_fine, stride, values, grf, tol, max_iter, batch_size, face_mean):
    alpha, tau, sigma = grf
    high, low = values
    f = jnp.ones((s_fine - 2, s_fine - 2), jnp.float32)

    def one(k):
        g = grf_neumann(k, s_fine, alpha=alpha, tau=tau, sigma=sigma)
        a = jnp.where(g >= 0, jnp.float32(high), jnp.float32(low))
        u, info = _pcg_one(a, f, tol, max_iter, face_mean)
        return a[::stride, ::stride], u[::stride, ::stride], info

    keys = jax.random.split(key, num_samples)
    return jax.lax.map(one, keys, batch_size=batch_size)


def _check_coefficient(name: str, value) -> float:
    """A coefficient value the float32 field ``a`` holds: finite, > 0, and between float32's
    smallest normal number and its largest (1e300 was cast to inf, with a NumPy overflow
    warning, and 1e-50 to 0, a singular solve)."""
    value = check_positive_float(name, value)
    info = np.finfo(np.float32)
    if not float(info.tiny) <= value <= float(info.max):
        raise ValueError(
            f"`{name}`={value} does not fit the float32 coefficient field: expected "
            f"{float(info.tiny):.3g} <= {name} <= {float(info.max):.3g} (the paper: 12 and 3)."
        )
    return value


def darcy_dataset(
    key: PRNGKeyArray,
    num_samples: int,
    resolution: int,
    *,
    solver_resolution: int | None = None,
    a_high: float = 12.0,
    a_low: float = 3.0,
    alpha: float = 2.0,
    tau: float = 3.0,
    tol: float = 1e-5,
    max_iter: int = 2000,
    batch_size: int = 64,
    face_mean: str = "harmonic",
) -> tuple[Float[Array, "B X Y"], Float[Array, "B X Y"]]:
    """The FNO Darcy benchmark: piecewise-constant coefficients and the pressure they produce.

    Li et al. (2021), "Fourier Neural Operator for Parametric Partial Differential Equations":
    ``-∇·(a ∇u) = 1`` on the unit square, ``u = 0`` on the boundary,
    ``a = a_high`` where ``g >= 0`` and ``a_low`` elsewhere, ``g ~ N(0, (-Δ + 9 I)^(-2))`` with
    Neumann conditions (:func:`grf_neumann`). Solved by :func:`darcy_solve` on
    ``solver_resolution`` nodes per side and subsampled to ``resolution`` (the paper solves on
    421 and subsamples to 85, 141, 211: pass ``solver_resolution=421``).

    Cost: about 10 PCG iterations of a few FFTs of the solver grid per sample, at any grid
    size. Measured on 2 CPU cores: 1000 samples at 85 in 4 s; 100 samples solved at 421 and
    subsampled to 85 in 10 s (compilation included).

    Args:
        key: a PRNG key; sample ``i`` uses ``jax.random.split(key, num_samples)[i]``, which
            does not depend on ``num_samples``: the first samples of a larger set are a
            smaller set's, so draw a test set from a key other than its training set's (or
            slice one draw, as the configs do).
        num_samples: number of pairs.
        resolution: output nodes per side (boundary included), ``>= 3``.
        solver_resolution: internal nodes per side (default ``resolution``); ``solver_resolution
            - 1`` must be a multiple of ``resolution - 1``.
        a_high, a_low: the two coefficient values (finite, within float32's normal range).
        alpha, tau: covariance of ``g`` (only its sign matters, so no amplitude).
        tol: relative residual at which the solve stops (as in :func:`darcy_solve`),
            ``0 < tol < 1``.
        max_iter: iteration cap of the solve.
        batch_size: samples solved at once (memory bound; results do not depend on it).
        face_mean: face conductivities of the solver (:func:`darcy_solve`); ``"arithmetic"``
            as the paper's MATLAB generator.

    Returns:
        ``(a, u)``: float32, each of shape ``(num_samples, resolution, resolution)``.

    Raises:
        RuntimeError: called outside ``jit``, when a sample's solve reaches ``max_iter`` before
            ``tol``; the message lists the sample indices. A ``RuntimeWarning`` names the
            samples whose solution's residual is above ``10 tol`` plus its round-off bound, as
            in :func:`darcy_solve`. Under ``jax.jit`` neither check runs.
    """
    check_key("key", key)
    num_samples = check_positive_int("num_samples", num_samples)
    resolution = check_positive_int("resolution", resolution, minimum=3)
    solver_resolution = resolution if solver_resolution is None else solver_resolution
    solver_resolution = check_positive_int("solver_resolution", solver_resolution, minimum=3)
    if (solver_resolution - 1) % (resolution - 1):
        raise ValueError(
            f"`solver_resolution - 1`={solver_resolution - 1} must be a multiple of "
            f"`resolution - 1`={resolution - 1} so that the output nodes are solver nodes "
            f"(e.g. resolution 85 from solver_resolution 421)."
        )
    a_high = _check_coefficient("a_high", a_high)
    a_low = _check_coefficient("a_low", a_low)
    tol = _check_tol(tol)
    max_iter = check_positive_int("max_iter", max_iter)
    batch_size = check_positive_int("batch_size", batch_size)
    face_mean = _check_face_mean(face_mean)
    _check_params(alpha, tau, 1.0, zero_mean=True)  # before float(): "3" and True pass it
    a, u, info = _generate(
        key,
        num_samples,
        solver_resolution,
        (solver_resolution - 1) // (resolution - 1),
        (a_high, a_low),
        (float(alpha), float(tau), 1.0),
        tol,
        max_iter,
        min(batch_size, num_samples),
        face_mean,
    )
    if not isinstance(u, jax.core.Tracer):
        _check_converged(
            info,
            tol,
            max_iter,
            (num_samples,),
            lambda i: max(a_high, a_low) / min(a_high, a_low),
            "samples",
            "Raise `max_iter` or `tol`, or lower the contrast `a_high` / `a_low`.",
        )
    return a, u
