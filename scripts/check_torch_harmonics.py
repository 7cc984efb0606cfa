"""Cross-check spectrax's spherical harmonic transform and spherical convolution against
torch-harmonics (PyTorch) with the same inputs and weights.

torch-harmonics (Bonev et al., 2023, "Spherical Fourier Neural Operators: Learning Stable
Dynamics on the Sphere"; Schaeffer, 2013) is NVIDIA's reference implementation of the SFNO. This
script records the largest difference between:

1. ``RealSHT`` / ``InverseRealSHT`` on the ``"legendre-gauss"`` grid (``norm="ortho"``,
   ``csphase=False``) and :func:`spectrax.transforms.sht` / :func:`~spectrax.transforms.isht`,
   on random band-limited fields (and random coefficients) at a few ``(nlat, nlon, l_max)``.
2. ``SpectralConvS2`` (``grid_in = grid_out = "legendre-gauss"``) and
   :func:`spectrax.nn.spherical_conv`, on the input grid and on a finer output grid.

Grid. Both put the Gauss-Legendre colatitudes ``arccos(x_i)`` north to south (ascending) and
the longitudes at ``2 pi j / nlon``; the script checks the nodes agree.

Coefficient layout. torch-harmonics returns complex ``a_lm`` (``m >= 0``, shape ``(L, M)`` with
``L = l_max + 1`` degrees) of the complex orthonormal ``Y_l^m = P̄_l^m(cos θ) e^{i m φ}``
(``csphase=False``: no ``(-1)^m``): ``a_lm = ∫ f conj(Y_l^m) dΩ``, and the inverse reads
``f = Σ_l [a_l0 P̄_l^0 + 2 Σ_{m>0} Re(a_lm e^{i m φ}) P̄_l^m]`` (``irfft`` with
``norm="forward"``). spectrax's real ``Y_lm`` is ``sqrt(2) P̄_l^m cos(m φ)`` (``m > 0``),
``P̄_l^0`` and ``sqrt(2) P̄_l^|m| sin(|m| φ)`` (``m < 0``), so

    c_l0 = Re a_l0,   c_lm = sqrt(2) Re a_lm,   c_l,-m = -sqrt(2) Im a_lm   (m > 0),

and the map is exact both ways (:func:`to_spectrax`, :func:`to_torch`).

Spherical convolution. torch-harmonics' weight ``K[g, i, o, l]`` is *complex* per degree;
spectrax's ``W[o, i, l]`` is real. With ``K = W`` (imaginary part zero) the two layers are the
same map. The imaginary part has no spectrax counterpart, and cannot have one in a layer that
commutes with rotations: on each degree the real harmonics carry a real irreducible, absolutely
irreducible representation of SO(3), so by Schur's lemma a rotation-equivariant linear map acts on
it as a real scalar (per channel pair). ``i K`` maps ``(c_lm, c_l,-m)`` to ``(c_l,-m, -c_lm)``
for ``m > 0`` (a quarter-period shift in longitude of every order, i.e. a Hilbert transform in
``φ``) and drops the ``m = 0`` part (``irfft`` discards the imaginary part of the DC bin): it
commutes with rotations about the polar axis only. The script records that term's size on a
random field (``complex_weight_extra``) and the rotation-equivariance error of each layer under
a rotation about the x axis.

Precision. The transforms are compared in float64 on both sides. ``SpectralConvS2`` casts its
input to float32 and holds complex64 weights, so the convolution agrees to float32 rounding.

Runs only where ``torch`` and ``torch_harmonics`` import (a separate environment: they are not
spectrax dependencies), e.g.::

    python -m venv /tmp/xval-venv && /tmp/xval-venv/bin/pip install torch torch-harmonics
    /tmp/xval-venv/bin/pip install -e .
    /tmp/xval-venv/bin/python scripts/check_torch_harmonics.py

and writes ``benchmarks/torch-harmonics-equivalence-<platform>.json``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from spectrax._benchmark import provenance, record_path, write_record  # noqa: E402
from spectrax.nn import spherical_conv  # noqa: E402
from spectrax.transforms import isht, real_sph_harm, sht, sphere_grid  # noqa: E402


def rel_err(a, b) -> float:
    """``max |a - b| / max |b|`` (b the reference)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def to_spectrax(a: np.ndarray) -> np.ndarray:
    """torch-harmonics' complex ``(..., L, M)`` coefficients as spectrax's real
    ``(..., L^2)`` ones (index ``l^2 + l + m``); orders ``m > l`` (zero) and ``m >= L`` are
    dropped."""
    size = a.shape[-2]
    out = np.zeros(a.shape[:-2] + (size * size,))
    for l in range(size):
        out[..., l * l + l] = a[..., l, 0].real
        for m in range(1, min(l, a.shape[-1] - 1) + 1):
            out[..., l * l + l + m] = math.sqrt(2.0) * a[..., l, m].real
            out[..., l * l + l - m] = -math.sqrt(2.0) * a[..., l, m].imag
    return out


def to_torch(c: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_spectrax`: real ``(..., L^2)`` to complex ``(..., L, L)``."""
    size = math.isqrt(c.shape[-1])
    a = np.zeros(c.shape[:-1] + (size, size), complex)
    for l in range(size):
        a[..., l, 0] = c[..., l * l + l]
        for m in range(1, l + 1):
            a[..., l, m] = (c[..., l * l + l + m] - 1j * c[..., l * l + l - m]) / math.sqrt(2.0)
    return a


def synthesis(c: np.ndarray, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """``Σ c_lm Y_lm(theta, phi)`` at arbitrary points (spectrax's ``real_sph_harm``), the exact
    value of a band-limited field."""
    size = math.isqrt(c.shape[-1])
    y = np.asarray(real_sph_harm(size - 1, jnp.asarray(theta), jnp.asarray(phi)))
    return np.tensordot(c, y, axes=([-1], [0]))


def rotated_grid(nlat: int, nlon: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Colatitude and longitude of ``R^{-1} p`` for every grid point ``p``, ``R`` the rotation by
    ``angle`` about the x axis: ``g = f o R^{-1}`` is ``f`` rotated by ``R``."""
    theta, phi, _ = sphere_grid(nlat, nlon)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    xyz = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)])
    c, s = math.cos(angle), math.sin(angle)
    inv = np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])  # R^{-1} = R^T
    x, y, z = np.einsum("ab,bij->aij", inv, xyz)
    return np.arccos(np.clip(z, -1.0, 1.0)), np.arctan2(y, x)


class Check:
    def __init__(self, torch, th, seed: int):
        self.torch, self.th = torch, th
        self.rng = np.random.default_rng(seed)
        self.rows: list[dict] = []

    def transforms(self, nlat: int, nlon: int, l_max: int, batch: int = 3, dtype=np.float64):
        torch, th = self.torch, self.th
        size = l_max + 1
        fwd = th.RealSHT(nlat, nlon, lmax=size, mmax=size, grid="legendre-gauss", csphase=False)
        inv = th.InverseRealSHT(
            nlat, nlon, lmax=size, mmax=size, grid="legendre-gauss", csphase=False
        )
        theta, phi, _ = sphere_grid(nlat, nlon)
        lats, _ = th.quadrature.precompute_latitudes(nlat, grid="legendre-gauss")
        c = self.rng.normal(size=(batch, size * size))
        f = synthesis(c, theta[:, None], phi[None, :])  # band-limited: sht(f) == c exactly
        ctype = np.complex64 if dtype == np.float32 else np.complex128
        with torch.no_grad():
            a_t = fwd(torch.from_numpy(f.astype(dtype))).numpy()
            f_t = inv(torch.from_numpy(to_torch(c).astype(ctype))).numpy()
        c_s = np.asarray(sht(jnp.asarray(f, dtype), l_max))
        f_s = np.asarray(isht(jnp.asarray(c, dtype), nlat, nlon))
        self.rows.append(
            dict(
                case=f"sht / isht ({np.dtype(dtype).name})",
                nlat=nlat,
                nlon=nlon,
                l_max=l_max,
                grid_colatitude_max_abs_diff=float(np.abs(lats.numpy() - theta).max()),
                sht_max_rel_err=rel_err(c_s, to_spectrax(a_t)),
                isht_max_rel_err=rel_err(f_s, f_t),
                sht_err_vs_exact_spectrax=rel_err(c_s, c),
                sht_err_vs_exact_torch_harmonics=rel_err(to_spectrax(a_t), c),
                isht_err_vs_exact_spectrax=rel_err(f_s, f),
                isht_err_vs_exact_torch_harmonics=rel_err(f_t, f),
            )
        )

    def conv(self, shape_in, shape_out, l_max: int, ci: int = 3, co: int = 4, batch: int = 2):
        torch, th = self.torch, self.th
        conv_t = th.SpectralConvS2(
            shape_in, shape_out, ci, co, grid_in="legendre-gauss", grid_out="legendre-gauss"
        )
        size = conv_t.lmax  # torch-harmonics keeps min(nlat, nlon // 2 + 1) degrees
        assert size >= l_max + 1, (size, l_max)
        w = self.rng.normal(size=(co, ci, l_max + 1)) / math.sqrt(ci)
        k = np.zeros((1, ci, co, size), complex)
        k[0, :, :, : l_max + 1] = np.swapaxes(w, 0, 1)  # degrees above l_max: zero
        x = self.rng.normal(size=(batch, ci, *shape_in))

        def run_t(kernel, inp):
            conv_t.weight = torch.nn.Parameter(torch.from_numpy(kernel).to(torch.complex64))
            with torch.no_grad():
                return conv_t(torch.from_numpy(inp)).double().numpy()

        def run_s(inp):
            f = jax.vmap(lambda v: spherical_conv(v, jnp.asarray(w), tuple(shape_out)))
            return np.asarray(f(jnp.asarray(inp)))

        y_t, y_s = run_t(k, x), run_s(x)
        # the imaginary part of a complex per-degree weight, which spectrax does not have
        k_im = k + 1j * np.pad(
            np.swapaxes(self.rng.normal(size=(co, ci, l_max + 1)), 0, 1)[None] / math.sqrt(ci),
            [(0, 0), (0, 0), (0, 0), (0, size - l_max - 1)],
        )
        y_im = run_t(k_im, x)
        row = dict(
            case="SpectralConvS2 vs spherical_conv, real weights",
            shape_in=list(shape_in),
            shape_out=list(shape_out),
            l_max=l_max,
            torch_harmonics_degrees=size,
            channels=[ci, co],
            max_rel_err=rel_err(y_s, y_t),
            complex_weight_extra=rel_err(y_im, y_t) if np.abs(y_t).max() else None,
        )
        if tuple(shape_in) == tuple(shape_out):
            row.update(self.equivariance(shape_in, l_max, w, k, k_im, run_t, run_s))
        self.rows.append(row)

    def equivariance(self, shape, l_max, w, k, k_im, run_t, run_s, angle=0.7) -> dict:
        """Each layer's error ``|conv(f o R^-1) - conv(f) o R^-1| / |conv(f)|`` for a random field
        ``f`` of degree <= l_max and the rotation ``R`` by ``angle`` about the x axis: exact
        values from the coefficients (the output is band-limited to ``l_max`` too)."""
        nlat, nlon = shape
        ci = w.shape[1]
        c = self.rng.normal(size=(1, ci, (l_max + 1) ** 2))
        theta, phi, _ = sphere_grid(nlat, nlon)
        rt, rp = rotated_grid(nlat, nlon, angle)
        f = synthesis(c, theta[:, None], phi[None, :])
        g = synthesis(c, rt, rp)
        out = {}
        for name, run in (
            ("spectrax", run_s),
            ("torch_harmonics_real_weight", lambda v: run_t(k, v)),
            ("torch_harmonics_complex_weight", lambda v: run_t(k_im, v)),
        ):
            y_f, y_g = run(f), run(g)
            # conv(f) is band-limited to l_max: read its coefficients, evaluate at R^{-1} p
            want = synthesis(np.asarray(sht(jnp.asarray(y_f), l_max)), rt, rp)
            out[f"rotation_equivariance_err_{name}"] = rel_err(y_g, want)
        return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import torch
        import torch_harmonics as th
        import torch_harmonics.quadrature  # noqa: F401
    except ImportError as e:
        print(
            f"check_torch_harmonics: skipped, torch and torch_harmonics are not importable here "
            f"({e}); install them in a separate environment (see this script's docstring)."
        )
        return 0
    torch.set_default_dtype(torch.float64)
    check = Check(torch, th, args.seed)
    check.transforms(8, 15, 7)  # the minimal grid
    check.transforms(16, 32, 15)
    check.transforms(32, 64, 20)  # l_max below the grid's limit
    check.transforms(48, 96, 47)
    check.transforms(16, 32, 15, dtype=np.float32)
    check.transforms(48, 96, 47, dtype=np.float32)
    check.conv((16, 32), (16, 32), 15)
    check.conv((16, 32), (16, 32), 9)
    check.conv((16, 32), (24, 48), 15)  # a finer output grid

    record = {
        "check": "spectrax vs torch-harmonics, same inputs and weights",
        **provenance(),
        "torch": torch.__version__,
        "torch_harmonics": th.__version__,
        "precision": (
            "transforms float64 on both sides (and float32 on both sides in the float32 rows); "
            "SpectralConvS2 computes in float32 with complex64 "
            "weights, so the convolution agrees to float32 rounding"
        ),
        "error": "max |spectrax - torch_harmonics| / max |torch_harmonics| over the batch",
        "layout": (
            "c_l0 = Re a_l0, c_lm = sqrt(2) Re a_lm, c_l,-m = -sqrt(2) Im a_lm (m > 0); "
            "torch-harmonics with grid='legendre-gauss', norm='ortho', csphase=False"
        ),
        "arbiter": (
            "exact answers from the coefficients: sht of a band-limited field is its "
            "coefficients, isht of coefficients is their synthesis at the grid points "
            "(real_sph_harm); rotation equivariance under a 0.7 rad rotation about the x axis"
        ),
        "note": (
            "torch-harmonics' SpectralConvS2 weight is complex per degree; its real part is "
            "spectrax's weight. The imaginary part multiplies every order m > 0 by i (a "
            "quarter-period shift in longitude of each order) and is dropped at m = 0, so it "
            "commutes only with rotations about the polar axis (Schur: an SO(3)-equivariant map "
            "is a real scalar per degree); complex_weight_extra is its effect on the output and "
            "rotation_equivariance_err_torch_harmonics_complex_weight the symmetry it breaks. "
            "The SFNO models are not compared: torch-harmonics' example SFNO has an encoder MLP, "
            "position embedding, normalisation and inner/outer skips that spectrax's SFNO "
            "(lift, SFNOBlocks, projection) does not have"
        ),
        "rows": check.rows,
    }
    for r in check.rows:
        print(json.dumps(r))
    write_record(record, args.out or record_path(__file__, "torch-harmonics-equivalence"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
