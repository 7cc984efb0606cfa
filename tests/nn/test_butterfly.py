"""The Butterfly module (Dao et al., 2019): its initialisations as matrices, orthogonality of the
random init, the forward against its dense matrix, gradients, and recovery of the DFT and the
Hadamard transform from input/output pairs."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg
from jax.test_util import check_grads

from spectrax.nn._butterfly import Butterfly
from spectrax.transforms._butterfly import bit_reversal_permutation
from tests.helpers import assert_close, count_compiles


def _dft(n):
    """Unitary DFT matrix, float64 NumPy: F @ x == np.fft.fft(x, norm="ortho")."""
    return np.fft.fft(np.eye(n), axis=0, norm="ortho")


@pytest.mark.parametrize("complex", [False, True])
def test_random_init_is_orthogonal(key, complex):
    n = 64
    b = Butterfly(n, complex=complex, key=key)
    assert b.twiddle.dtype == jnp.float32
    assert b.twiddle.shape == ((2,) if complex else ()) + (6, 32, 2, 2)
    assert b.num_params == (4 if complex else 2) * n * 6
    m = np.asarray(b.to_dense(), np.complex128)
    assert_close(np.conj(m.T) @ m, np.eye(n), jnp.float32)
    # Every block is orthogonal/unitary, and they are Haar: for real blocks, rotations and
    # reflections are equally likely (192 blocks; the fraction is 0.5 +- 0.036 (1 sd)).
    tw = np.asarray(b.as_twiddle(), np.complex128)
    gram = np.conj(np.swapaxes(tw, -1, -2)) @ tw
    assert_close(gram, np.broadcast_to(np.eye(2), gram.shape), jnp.float32)
    if not complex:
        det = np.linalg.det(tw.real)
        assert 0.35 < np.mean(det < 0) < 0.65
    # Different keys, different matrices.
    other = np.asarray(Butterfly(n, complex=complex, key=jax.random.key(1)).to_dense())
    assert not np.allclose(m, other, atol=0.1)


def test_deterministic_inits(key):
    n = 16
    perm = bit_reversal_permutation(n)
    f = _dft(n)
    assert_close(Butterfly(n, init="identity", key=key).to_dense(), np.eye(n), jnp.float32)
    h = scipy.linalg.hadamard(n) / 4.0
    assert_close(Butterfly(n, init="hadamard", key=key).to_dense(), h, jnp.float32)
    hc = Butterfly(n, complex=True, init="hadamard", key=key)
    assert hc.to_dense().dtype == jnp.complex64
    assert_close(hc.to_dense(), h, jnp.complex64)
    # B = F P with strides increasing, P F with strides decreasing (P the bit reversal).
    fp = Butterfly(n, complex=True, init="fft", key=key).to_dense()
    assert_close(fp, f[:, perm], jnp.complex64)
    pf = Butterfly(n, complex=True, init="fft", increasing_stride=False, key=key).to_dense()
    assert_close(pf, f[perm, :], jnp.complex64)


def test_fft_init_computes_the_fft(x64, key):
    n = 32
    b = Butterfly(n, complex=True, init="fft", dtype=jnp.float64, key=key)
    x = np.random.default_rng(0).standard_normal((4, n))
    got = jax.vmap(b)(jnp.asarray(x[:, bit_reversal_permutation(n)]))
    assert got.dtype == jnp.complex128
    assert_close(got, np.fft.fft(x, norm="ortho"), jnp.complex128)


@pytest.mark.parametrize("complex", [False, True])
def test_call_matches_dense_jit_and_vmap(key, complex):
    n = 16
    b = Butterfly(n, complex=complex, increasing_stride=False, key=key)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((6, n)), jnp.float32)
    batched = jax.vmap(b)(x)
    assert batched.dtype == (jnp.complex64 if complex else jnp.float32)
    looped = jnp.stack([b(r) for r in x])
    assert_close(batched, looped, batched.dtype)
    assert_close(batched, np.asarray(x) @ np.asarray(b.to_dense()).T, batched.dtype)
    assert_close(eqx.filter_jit(lambda m, u: jax.vmap(m)(u))(b, x), batched, batched.dtype)


@pytest.mark.parametrize("complex", [False, True])
def test_grad_wrt_twiddles_matches_finite_differences(x64, key, complex):
    n = 8
    b = Butterfly(n, complex=complex, dtype=jnp.float64, key=key)
    x = jnp.asarray(np.random.default_rng(2).standard_normal((3, n)))
    y = jnp.asarray(np.random.default_rng(3).standard_normal((3, n)))

    @jax.jit
    def loss(tw):
        out = jax.vmap(eqx.tree_at(lambda m: m.twiddle, b, tw))(x)
        return jnp.sum(jnp.abs(out - y.astype(out.dtype)) ** 2)

    check_grads(loss, (b.twiddle,), order=1, modes="rev")


def _fit(model, target, steps, lr, batch=64):
    """Adam on ``mean |model(x) - target x|^2`` over a fixed Gaussian batch; returns the
    relative Frobenius error of the learnt matrix and of the initial one."""
    n = model.n
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, n))
    if model.complex:
        x = x + 1j * rng.standard_normal((batch, n))
    x = jnp.asarray(x, jnp.complex64 if model.complex else jnp.float32)
    y = jnp.asarray(np.asarray(x) @ target.T, x.dtype)
    params, static = eqx.partition(model, eqx.is_array)
    opt = optax.adam(lr)

    def loss(p):
        return jnp.mean(jnp.abs(jax.vmap(eqx.combine(p, static))(x) - y) ** 2)

    def step(carry, _):
        p, s = carry
        updates, s = opt.update(jax.grad(loss)(p), s, p)
        return (optax.apply_updates(p, updates), s), None

    @jax.jit
    def run(p):
        (p, _), _ = jax.lax.scan(step, (p, opt.init(p)), None, length=steps)
        return p

    with jax.numpy_dtype_promotion("standard"):  # optax's bias correction mixes int and float
        learnt = eqx.combine(run(params), static)

    def err(m):
        d = np.asarray(m.to_dense(), np.complex128)
        return np.linalg.norm(d - target) / np.linalg.norm(target)

    return err(learnt), err(model)


def test_learns_dft_and_hadamard(key):
    """Dao et al. (2019), Sec. 4.1: a butterfly recovers fast transforms from data. n = 16,
    random (orthogonal) init, 300 Adam steps at lr 0.03 on 64 input/output pairs.
    Measured relative Frobenius error of the learnt matrix, keys 0-5: unitary DFT (with the
    bit-reversal permutation on the input, since one butterfly is F P), complex butterfly
    5e-7 .. 7e-7; Sylvester Hadamard / 4, real butterfly 7e-6 .. 9e-5. At init both are
    ~1.4 (two independent orthogonal matrices: sqrt(2)). With lr 0.01 the real butterfly
    stalls at 0.09 .. 0.3 for these keys, hence the larger rate."""
    n = 16
    fp = _dft(n)[:, bit_reversal_permutation(n)]
    err, err0 = _fit(Butterfly(n, complex=True, key=key), fp, steps=300, lr=0.03)
    assert err0 > 1.0 and err < 1e-4, (err0, err)
    h = scipy.linalg.hadamard(n) / 4.0
    err, err0 = _fit(Butterfly(n, key=key), h, steps=300, lr=0.03)
    assert err0 > 1.0 and err < 1e-3, (err0, err)


def test_errors(key, library_errors):
    with pytest.raises(ValueError, match=r"`init` must be one of \['random', 'identity', "):
        Butterfly(8, init="orthogonal", key=key)
    with pytest.raises(ValueError, match=r"`n`=12 is not a power of two >= 2.*n=16"):
        Butterfly(12, key=key)
    with pytest.raises(TypeError, match=r"`n` must be an int"):
        Butterfly(8.0, key=key)
    with pytest.raises(ValueError, match=r"`init`='fft' needs `complex=True`"):
        Butterfly(8, init="fft", key=key)
    with pytest.raises(TypeError, match=r"`dtype` must be a real floating dtype.*complex64"):
        Butterfly(8, complex=True, dtype=jnp.complex64, key=key)
    # not a dtype at all: used to be NumPy's "data type 'foo' not understood", naming nothing
    with pytest.raises(TypeError, match=r"`dtype` must be a real floating dtype.*got 'foo'"):
        Butterfly(8, dtype="foo", key=key)
    b = Butterfly(8, key=key)
    with pytest.raises(ValueError, match=r"`x` must be one vector of shape \(8,\); got .*\(2, 8\)"):
        b(jnp.zeros((2, 8)))
    with pytest.raises(TypeError, match=r"`x` must be a floating-point or complex.*int32"):
        b(jnp.zeros(8, jnp.int32))


def test_complex_random_init_is_one_program():
    """The twiddle compiles as one program (eagerly 14 compilations for a complex
    Butterfly(64), most of its construction time); test_random_init_is_orthogonal checks it."""
    key = jax.random.key(6)
    with count_compiles() as n:  # a size no other test builds: nothing cached
        b = Butterfly(128, complex=True, key=key)
    assert n[0] == 1 and b.twiddle.shape == (2, 7, 64, 2, 2)
