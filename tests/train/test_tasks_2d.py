"""FieldRegressionTask on fields with two spatial axes (and channels): the model's view of the
data, grid channels, the relative L2 metric, and errors for bad shapes."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spectrax.train import FieldRegressionTask, SequenceClassificationTask, grid_coordinates


class Scale(eqx.Module):
    """``x -> factor * x[:1]``, recording nothing: a model whose error is known exactly."""

    factor: float = eqx.field(static=True)

    def __call__(self, x):
        return self.factor * x[:1]


def _fields(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_grid_coordinates_periodic_and_endpoint():
    g = grid_coordinates((4, 3), "periodic", np.float32)
    assert g.shape == (2, 4, 3)
    np.testing.assert_allclose(g[0, :, 0], [0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(g[1, 0, :], [0, 1 / 3, 2 / 3], rtol=1e-6)
    # x varies along axis 0 only, y along axis 1 only.
    assert np.all(g[0] == g[0][:, :1]) and np.all(g[1] == g[1][:1, :])
    e = grid_coordinates((5, 3), "endpoint", np.float32)
    np.testing.assert_allclose(e[0, :, 0], [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(e[1, 0, :], [0, 0.5, 1.0])
    with pytest.raises(ValueError, match=r"`grid`.*'cell'"):
        grid_coordinates((4,), "cell", np.float32)


@pytest.mark.parametrize("grid", ["periodic", "endpoint"])
def test_model_sees_field_and_grid_channels(grid):
    a = _fields((6, 8, 5))
    task = FieldRegressionTask(
        make_model=lambda key: None,
        train=(a, a),
        test=(a, a),
        num_spatial_dims=2,
        grid_channel=True,
        grid=grid,
    )
    x = task._inputs(jnp.asarray(a[:3]))
    assert x.shape == (3, 3, 8, 5)
    np.testing.assert_array_equal(x[:, 0], a[:3])
    expected = grid_coordinates((8, 5), grid, np.float32)
    np.testing.assert_array_equal(x[1, 1:], expected)
    # Last node: j / X on the torus, 1 on a node grid holding both boundaries.
    assert float(x[0, 1, -1, 0]) == pytest.approx(7 / 8 if grid == "periodic" else 1.0)


def test_predict_loss_and_exact_relative_error():
    a = _fields((10, 8, 6))
    task = FieldRegressionTask(
        make_model=lambda key: Scale(1.5),
        train=(a[:6], a[:6]),
        test=(a[6:], a[6:]),
        num_spatial_dims=2,
        eval_batch=3,  # two batches: the last is partial
    )
    model = task.init_model(jax.random.key(0))
    assert task.predict(model, jnp.asarray(a[:2])).shape == (2, 8, 6)
    loss, metrics = task.loss(model, task.get_batch(np.arange(4)))
    # pred = 1.5 u: the relative L2 error is 0.5 for every sample, over both spatial axes.
    assert float(loss) == pytest.approx(0.5, rel=1e-5)
    assert float(metrics["train_rel_l2"]) == pytest.approx(0.5, rel=1e-5)
    result = task.evaluate(model)
    assert result["test_error"] == pytest.approx(0.5, rel=1e-5)
    assert result["test_rel_l2_max"] == pytest.approx(0.5, rel=1e-5)


def test_relative_error_is_per_sample_over_all_axes():
    a = _fields((4, 3, 8, 8))
    u = _fields((4, 2, 8, 8), seed=1)
    task = FieldRegressionTask(
        make_model=lambda key: lambda x: x[1:3],
        train=(a, u),
        test=(a, u),
        num_spatial_dims=2,
        channel_axis=True,
    )
    pred = a[:, 1:3].astype(np.float64)
    want = [
        np.sqrt(np.sum((pred[i] - u[i]) ** 2) / np.sum(u[i].astype(np.float64) ** 2))
        for i in range(4)
    ]
    got = task.evaluate(task.init_model(None))
    assert got["test_error"] == pytest.approx(np.mean(want), rel=1e-5)
    assert got["test_rel_l2_max"] == pytest.approx(np.max(want), rel=1e-5)


@pytest.mark.filterwarnings("error")
def test_a_zero_test_target_is_scored_as_the_training_loss_scores_it():
    """A test example whose target is zero everywhere: the test error clamps its denominator as
    ``relative_lp_loss`` does (0 for a zero prediction, else finite), where it divided by zero
    (NaN for 0 / 0, inf otherwise, with NumPy's warning)."""
    a = _fields((4, 8, 6))
    u = a.copy()
    u[1] = 0.0

    def task_for(inputs):
        return FieldRegressionTask(
            make_model=lambda key: Scale(1.5),
            train=(inputs, u),
            test=(inputs, u),
            num_spatial_dims=2,
        )

    # example 1's input (so its prediction) zero too: error 0 there, 0.5 elsewhere
    zero_in = a.copy()
    zero_in[1] = 0.0
    task = task_for(zero_in)
    got = task.evaluate(task.init_model(None))
    assert got["test_error"] == pytest.approx(1.5 / 4, rel=1e-5)
    assert got["test_rel_l2_max"] == pytest.approx(0.5, rel=1e-5)
    # a nonzero prediction of the zero target: ||1.5 a[1]|| / sqrt(tiny), finite
    task = task_for(a)
    got = task.evaluate(task.init_model(None))
    huge = np.linalg.norm(1.5 * a[1].astype(np.float64)) / np.sqrt(np.finfo(np.float64).tiny)
    assert got["test_rel_l2_max"] == pytest.approx(huge, rel=1e-5)
    assert got["test_error"] == pytest.approx((huge + 1.5) / 4, rel=1e-5)
    _, metrics = task.loss(task.init_model(None), task.get_batch(np.arange(4)))
    assert np.isfinite(float(metrics["train_rel_l2"]))


def test_channels_with_grid_reach_the_model():
    a = _fields((5, 10, 4, 4))  # ten snapshots in
    u = _fields((5, 3, 4, 4), seed=1)  # three out
    seen = []

    def model(x):
        seen.append(x.shape)
        return jnp.zeros((3,) + x.shape[1:], x.dtype)

    task = FieldRegressionTask(
        make_model=lambda key: model,
        train=(a, u),
        test=(a, u),
        num_spatial_dims=2,
        channel_axis=True,
        grid_channel=True,
    )
    assert task.predict(model, jnp.asarray(a[:2])).shape == (2, 3, 4, 4)
    assert seen[-1] == (12, 4, 4)


def test_2d_plots(tmp_path):
    a = _fields((4, 8, 8))
    task = FieldRegressionTask(
        make_model=lambda key: Scale(1.0),
        train=(a, a),
        test=(a, a),
        num_spatial_dims=2,
    )
    paths = task.plots(task.init_model(None), tmp_path)
    assert [p.name for p in paths] == ["predictions.png"] and paths[0].stat().st_size > 0


def test_three_spatial_dims_train_without_plots(tmp_path):
    a = _fields((3, 4, 4, 4))
    task = FieldRegressionTask(
        make_model=lambda key: Scale(1.0), train=(a, a), test=(a, a), num_spatial_dims=3
    )
    assert task.evaluate(task.init_model(None))["test_error"] == pytest.approx(0.0, abs=1e-7)
    assert task.plots(task.init_model(None), tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        # 2-D arrays under the 1-D default: the message names the rank it expected.
        ({"train": ((4, 8, 8), (4, 8, 8))}, r"`train` must be two arrays \(B, \*spatial\)"),
        # a and u on different grids.
        ({"test": ((4, 8, 8), (4, 8, 6)), "num_spatial_dims": 2}, r"`test`.*\(4, 8, 6\)"),
        # Batch sizes that differ.
        ({"train": ((4, 8, 8), (3, 8, 8)), "num_spatial_dims": 2}, r"`train`.*\(3, 8, 8\)"),
        # Train and test on different grids.
        (
            {
                "train": ((4, 8, 8), (4, 8, 8)),
                "test": ((2, 6, 6), (2, 6, 6)),
                "num_spatial_dims": 2,
            },
            r"`test` must have the channels and grid of `train`.*\(6, 6\)",
        ),
        # Channels requested but missing.
        (
            {"num_spatial_dims": 2, "channel_axis": True},
            r"\(B, C, \*spatial\) with 2 spatial axes.*\(4, 8, 8\)",
        ),
        ({"num_spatial_dims": 0}, r"`num_spatial_dims` must be an integer >= 1; got 0"),
        ({"num_spatial_dims": 2, "grid": "nodes"}, r"`grid` must be one of.*'nodes'"),
    ],
)
def test_bad_shapes_raise_naming_the_argument(kwargs, match):
    shapes = {"train": ((4, 8, 8), (4, 8, 8)), "test": ((2, 8, 8), (2, 8, 8))}
    args = {}
    for name in ("train", "test"):
        sa, su = kwargs.pop(name, shapes[name])
        args[name] = (np.zeros(sa, np.float32), np.zeros(su, np.float32))
    with pytest.raises(ValueError, match=match):
        FieldRegressionTask(make_model=lambda key: None, **args, **kwargs)


def test_numpy_integer_num_spatial_dims():
    """An np.int64 `num_spatial_dims` (e.g. read from a config array) was refused as not an int."""
    a = np.zeros((4, 8, 8), np.float32)
    task = FieldRegressionTask(
        make_model=lambda key: None, train=(a, a), test=(a, a), num_spatial_dims=np.int64(2)
    )
    assert type(task.num_spatial_dims) is int and task.num_spatial_dims == 2


@pytest.mark.parametrize("name", ["step_snapshots", "eval_batch"])
def test_integer_options_checked(name, library_errors):
    """np.int64 `step_snapshots` was refused as not an int; `eval_batch=0` was not checked and
    failed in evaluate as range() with step 0."""
    a = np.zeros((4, 8, 8), np.float32)
    args = dict(make_model=lambda key: None, train=(a, a), test=(a, a), num_spatial_dims=2)
    task = FieldRegressionTask(**args, **{name: np.int64(1)})
    assert type(getattr(task, name)) is int
    with pytest.raises(ValueError, match=rf"`{name}` must be an integer >= 1; got 0"):
        FieldRegressionTask(**args, **{name: 0})


def test_sequence_task_eval_batch_checked(library_errors):
    x, y = np.zeros((4, 6, 2), np.float32), np.zeros(4, np.int32)
    with pytest.raises(ValueError, match=r"`eval_batch` must be an integer >= 1; got 0"):
        SequenceClassificationTask(
            make_model=lambda key: None, train=(x, y), test=(x, y), eval_batch=0
        )


def test_init_model_checks_the_model_against_one_example():
    """A model whose output does not match the targets, or that refuses the input, fails in
    init_model (shapes traced, nothing computed), naming what is wrong."""
    a = _fields((6, 8, 5))
    args = dict(train=(a[:4], a[:4]), test=(a[4:], a[4:]), num_spatial_dims=2)
    ok = FieldRegressionTask(make_model=lambda key: Scale(2.0), **args)
    assert isinstance(ok.init_model(jax.random.key(0)), Scale)

    class TwoChannels(eqx.Module):
        def __call__(self, x):
            return jnp.concatenate([x, x])

    wrong = FieldRegressionTask(make_model=lambda key: TwoChannels(), **args)
    with pytest.raises(ValueError, match=r"`pred` and `target` must have the same shape"):
        wrong.init_model(jax.random.key(0))


def test_sequence_task_init_model_checks_the_logits_shape():
    x = _fields((5, 12, 3))
    y = np.arange(5) % 2

    ok = SequenceClassificationTask(
        make_model=lambda key: lambda s: s[-1, :2], train=(x, y), test=(x, y)
    )
    ok.init_model(jax.random.key(0))
    bad = SequenceClassificationTask(make_model=lambda key: lambda s: s, train=(x, y), test=(x, y))
    with pytest.raises(ValueError, match=r"logits \(num_classes,\); it returns \(12, 3\)"):
        bad.init_model(jax.random.key(0))
    # 2 logits for labels 0..2: the cross-entropy would be NaN at every step
    y3 = np.arange(5) % 3
    few = SequenceClassificationTask(
        make_model=lambda key: lambda s: s[-1, :2], train=(x, y3), test=(x, y)
    )
    with pytest.raises(
        ValueError, match=r"returns 2 logits .* labels run to 2; expected at least 3"
    ):
        few.init_model(jax.random.key(0))


def test_sequence_task_refuses_negative_labels_and_other_test_channels(library_errors):
    """Label -1 trained as the last class (optax's cross-entropy indexes from the end) while the
    accuracy counted it wrong; test sequences with other channels failed only in evaluation."""
    x, y = np.zeros((4, 6, 2), np.float32), np.array([0, 1, -1, 1], np.int32)
    args = dict(make_model=lambda key: None, test=(x, np.zeros(4, np.int32)))
    with pytest.raises(ValueError, match=r"`train` labels must be class indices >= 0; got -1"):
        SequenceClassificationTask(train=(x, y), **args)
    with pytest.raises(ValueError, match=r"channels H of `train` \(2\); got 3"):
        SequenceClassificationTask(
            make_model=lambda key: None,
            train=(x, np.zeros(4, np.int32)),
            test=(np.zeros((4, 6, 3), np.float32), np.zeros(4, np.int32)),
        )
    # another length is allowed (evaluation on longer sequences)
    SequenceClassificationTask(
        make_model=lambda key: None,
        train=(x, np.zeros(4, np.int32)),
        test=(np.zeros((4, 9, 2), np.float32), np.zeros(4, np.int32)),
    )


def test_tasks_refuse_an_empty_set_and_name_a_list(library_errors):
    """An empty test set trained, then failed at the first evaluation ("need at least one array
    to concatenate", or IndexError at test[0][0]); a list x failed at `.ndim`."""
    a = _fields((4, 8, 5))
    with pytest.raises(ValueError, match=r"`test` must hold at least one example; got \(0, 8, 5\)"):
        FieldRegressionTask(
            make_model=lambda key: None, train=(a, a), test=(a[:0], a[:0]), num_spatial_dims=2
        )
    x, y = np.zeros((4, 6, 2), np.float32), np.zeros(4, np.int32)
    with pytest.raises(
        ValueError, match=r"`test` must hold at least one example; got x \(0, 6, 2\)"
    ):
        SequenceClassificationTask(make_model=lambda key: None, train=(x, y), test=(x[:0], y[:0]))
    # nested lists are arrays
    task = SequenceClassificationTask(
        make_model=lambda key: None, train=(x.tolist(), y.tolist()), test=(x, y)
    )
    assert task.train[0].shape == (4, 6, 2)
    with pytest.raises(TypeError, match=r"`train` must be a pair of arrays \(x, y\); got str"):
        SequenceClassificationTask(make_model=lambda key: None, train=("x", y), test=(x, y))


def test_a_bfloat16_increment_is_added_to_the_float32_field():
    """``residual=True`` without rollout: a model computing in bfloat16 (a mixed-precision
    step) returns the increment in bfloat16; it is added to the float32 input field in
    float32 (the field was rounded to bfloat16 first: a 2.4e-3 relative error floor for an
    exact increment of size 1e-2), as ``next_snapshots`` adds it for rollouts."""
    a = _fields((4, 8, 6))
    u = a + 1e-2 * np.sin(a)

    class Increment(eqx.Module):
        def __call__(self, x):
            return (1e-2 * jnp.sin(x[:1])).astype(jnp.bfloat16)

    task = FieldRegressionTask(
        make_model=lambda key: Increment(),
        train=(a, u),
        test=(a, u),
        num_spatial_dims=2,
        residual=True,
    )
    pred = task.predict(task.init_model(None), jnp.asarray(a))
    assert pred.dtype == jnp.float32
    err = np.linalg.norm(np.asarray(pred) - u) / np.linalg.norm(u)
    assert err < 1e-4, err  # the increment's own bfloat16 rounding; 2e-3 with the field's
