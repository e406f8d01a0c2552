"""Options that reproduce each seed exactly as written, off by default: ReLU backward
rules (seed 000), max-pool ties and hand-set weights (seeds 001, 003), batch order and
momentum reset (seeds 001, 004), seed 001's CIFAR preprocessing, the *-seed presets,
and the FFT convolution's exact zeros."""

import json
import pickle

import h5py
import numpy as np
import pytest

import partrain.nn as L
from partrain.cli import main
from partrain.data.datasets import DATASETS, load_dataset
from partrain.data.readers import generate_digits123, load_cifar10_seed
from partrain.errors import DataError, Interrupted, UsageError
from partrain.nn.optim import Momentum
from partrain.presets import PRESETS, build_model
from partrain.run.rundir import CHECKPOINT
from partrain.testing import interrupt_at, numeric_grad, rel_error, sample_coords
from partrain.train.settings import TrainSettings
from partrain.data.container import Data
from partrain.run.training import TrainingRun
from partrain.train.sampler import Sampler

SEED_PRESETS = {"lenet5-cat-seed": "lenet5-cat", "mnist-conv-seed": "mnist-conv",
                "convnet3-seed": "convnet3", "digits123-seed": "digits123"}


pytestmark = pytest.mark.usefixtures("one_blas_thread")


# -- ReLU backward rules (seed 000) -----------------------------------------------

X_RELU = np.array([[-2.0, -1.0, 0.0, 1.0, 2.0]])
DY_RELU = np.array([[3.0, -3.0, 4.0, -5.0, 6.0]])


@pytest.mark.parametrize("rule,expected", [
    ("input", [0.0, 0.0, 0.0, -5.0, 6.0]),       # where x > 0: the derivative
    ("error_sign", [3.0, 0.0, 4.0, 0.0, 6.0]),   # where dy > 0: seed 000 after S4
    ("none", [3.0, -3.0, 4.0, -5.0, 6.0]),       # dy unchanged: seed 000 after S2
])
def test_relu_backward_rules(rule, expected):
    layer = L.ReLU(rule) if rule != "input" else L.ReLU()
    y, cache = layer.forward(X_RELU)
    np.testing.assert_array_equal(y, [[0.0, 0.0, 0.0, 1.0, 2.0]])   # forward never changes
    dx, grads = layer.backward(DY_RELU.copy(), cache)
    np.testing.assert_array_equal(dx, [expected])
    assert grads == {}
    dx32, _ = layer.backward(DY_RELU.astype(np.float32), layer.forward(X_RELU)[1])
    assert dx32.dtype == np.float32


def test_layer_options_are_checked_and_described():
    with pytest.raises(ValueError, match="backward_rule"):
        L.ReLU("sign")
    with pytest.raises(ValueError, match="ties"):
        L.MaxPool2D(2, ties="last")
    assert L.ReLU().describe() == "ReLU"
    assert L.ReLU("error_sign").describe() == "ReLU(backward error_sign)"
    assert L.MaxPool2D(2, ties="all").describe() == "MaxPool2D(2x2, stride 2, ties all)"


# -- max-pool ties (seeds 001 and 003) ----------------------------------------------

def test_maxpool_ties_all_by_hand():
    x = np.array([[[[1.0, 3.0, 2.0, 2.0],
                    [3.0, 0.0, 2.0, 2.0],
                    [5.0, 1.0, 0.0, 0.0],
                    [4.0, 5.0, 0.0, 7.0]]]])
    dy = np.array([[[[10.0, 20.0], [30.0, 40.0]]]])
    y, cache = L.MaxPool2D(2, ties="all").forward(x)
    np.testing.assert_array_equal(y, [[[[3.0, 2.0], [5.0, 7.0]]]])
    dx, _ = L.MaxPool2D(2, ties="all").backward(dy, cache)
    np.testing.assert_array_equal(dx, [[[[0, 10, 20, 20],      # every tied max gets it all
                                         [10, 0, 20, 20],
                                         [30, 0, 0, 0],
                                         [0, 30, 0, 40]]]])
    pool = L.MaxPool2D(2)
    dx_first, _ = pool.backward(dy, pool.forward(x)[1])
    np.testing.assert_array_equal(dx_first, [[[[0, 10, 20, 0],   # the first in row-major order
                                               [0, 0, 0, 0],
                                               [30, 0, 0, 0],
                                               [0, 0, 0, 40]]]])


@pytest.mark.parametrize("ties", ["first", "all"])
@pytest.mark.parametrize("window,stride", [(2, 2), (3, 2)])
def test_maxpool_gradient_without_ties_is_the_same_for_both_rules(ties, window, stride):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 7, 7))        # continuous: no ties
    c = rng.standard_normal(L.MaxPool2D(window, stride).forward(x)[0].shape)
    pool = L.MaxPool2D(window, stride, ties=ties)
    dx, _ = pool.backward(c, pool.forward(x)[1])
    num = numeric_grad(lambda: float((pool.forward(x)[0] * c).sum()), x, h=1e-6)
    assert rel_error(dx, num) < 1e-8


def _digits_net(ties):
    """seed 003's net and weights with the given tie rule."""
    m = build_model("digits123-seed", dtype="float64")
    assert isinstance(m.layers[2], L.MaxPool2D) and m.layers[2].ties == "all"
    m.layers[2].ties = ties
    return m


def test_persistent_ties_first_is_the_gradient_all_counts_them_twice():
    """Binary images have identical windows, whose conv outputs tie for every value of
    the parameters: the max is then one of them, and only "first" is its gradient."""
    X, y = generate_digits123(24, seed=0)
    rng = np.random.default_rng(0)
    errors = {}
    for ties in ("first", "all"):
        m = _digits_net(ties)
        _, grads = m.loss_and_grads(X, y)
        p = m.params["c1.b"]
        num = numeric_grad(lambda: m.loss(m.forward(X)[0], y)[0] / len(X), p, h=1e-6)
        errors[ties] = rel_error(grads["c1.b"], num)
        coords = sample_coords(m.params["f2.W"].size, 12, rng)   # after the pool: same
        num = numeric_grad(lambda: m.loss(m.forward(X)[0], y)[0] / len(X), m.params["f2.W"],
                           h=1e-6, coords=coords)
        assert rel_error(grads["f2.W"].reshape(-1)[coords], num) < 1e-7
    assert errors["first"] < 1e-7
    assert errors["all"] > 1e-2


# -- Sampler: batch orders (seeds 001 and 004) -------------------------------------

def test_ordered_sampler_walks_the_stored_order_every_epoch():
    s = Sampler(10, 4, seed=5, order="ordered")
    got = [(e, idx.tolist()) for e, idx in (s.batch(step) for step in range(5))]
    assert got == [(0, [0, 1, 2, 3]), (0, [4, 5, 6, 7]), (0, [8, 9]),
                   (1, [0, 1, 2, 3]), (1, [4, 5, 6, 7])]
    full = Sampler(10, 10, seed=0, order="ordered")
    assert full.batch(3)[1].tolist() == list(range(10))


def test_replacement_sampler_draws_each_step_from_its_own_stream():
    a, b = Sampler(10, 4, seed=3, order="replacement"), Sampler(10, 4, seed=3, order="replacement")
    steps = [a.batch(t) for t in range(40)]
    for t in (37, 2, 0, 11):                      # any step, in any order: same indices
        e, idx = b.batch(t)
        assert e == steps[t][0] == t // 3
        np.testing.assert_array_equal(idx, steps[t][1])
        expect = np.random.default_rng([3, t // 3, t % 3]).integers(0, 10, size=4)
        np.testing.assert_array_equal(idx, expect)
    assert all(len(idx) == 4 and 0 <= idx.min() and idx.max() < 10 for _, idx in steps)
    assert any(len(set(idx.tolist())) < 4 for _, idx in steps)   # with replacement
    other = Sampler(10, 4, seed=4, order="replacement")
    assert any(not np.array_equal(other.batch(t)[1], steps[t][1]) for t in range(5))


def test_shuffle_stays_the_default_and_orders_are_checked():
    s = Sampler(10, 5, seed=1)
    assert s.order == "shuffle"
    epoch0 = np.concatenate([s.batch(0)[1], s.batch(1)[1]])
    assert sorted(epoch0.tolist()) == list(range(10)) and epoch0.tolist() != list(range(10))
    with pytest.raises(UsageError, match="batch_order"):
        Sampler(10, 5, seed=1, order="sorted")
    with pytest.raises(UsageError, match="batch_order"):
        TrainSettings(batch_order="sorted").resolved(10)
    with pytest.raises(UsageError, match="momentum_reset"):
        TrainSettings(momentum_reset="step").resolved(10)
    assert {"batch_order", "momentum_reset"} <= set(TrainSettings().result_settings())


# -- momentum reset (seed 004) ---------------------------------------------------------

def _digits_data():
    X, y = generate_digits123(96, seed=0)
    return Data(train=(X, y), num_classes=3, name="digits123")


class RecordingMomentum(Momentum):
    """Momentum that records the velocity each step starts from."""

    def step(self, w, g):
        self.seen = getattr(self, "seen", [])
        self.seen.append(self.state["velocity"].copy() if "velocity" in self.state else None)
        super().step(w, g)


def _train(model, optimizer, out=None, **settings):
    s = TrainSettings(batch_size=16, workers=1, backend="serial", progress=False,
                      out=None if out is None else str(out), **settings)
    return TrainingRun(model, _digits_data(), optimizer, s)


def test_momentum_reset_starts_every_epoch_from_a_fresh_optimizer():
    # 96 samples, batch 16: 6 steps an epoch; ordered, so every epoch has the same batches.
    a = build_model("digits123", seed=2, dtype="float64")
    opt = RecordingMomentum(0.5, momentum=0.9)
    _train(a, opt, epochs=2, batch_order="ordered", momentum_reset="epoch").run()
    assert opt.seen[0] is None or not opt.seen[0].any()
    assert not opt.seen[6].any()                              # zero at epoch 1's first step
    assert all(v.any() for i, v in enumerate(opt.seen) if i not in (0, 6))

    b = build_model("digits123", seed=2, dtype="float64")
    _train(b, Momentum(0.5, momentum=0.9), epochs=1, batch_order="ordered").run()
    _train(b, Momentum(0.5, momentum=0.9), epochs=1, batch_order="ordered").run()
    assert a.flat.tobytes() == b.flat.tobytes()

    c = build_model("digits123", seed=2, dtype="float64")      # never: momentum carries over
    _train(c, Momentum(0.5, momentum=0.9), epochs=2, batch_order="ordered").run()
    assert c.flat.tobytes() != a.flat.tobytes()


def test_resume_at_an_epoch_boundary_is_byte_identical(tmp_path, monkeypatch):
    import partrain.train.trainer as trainer_mod

    kw = dict(steps=12, batch_order="replacement", momentum_reset="epoch", eval_every=6)
    whole = build_model("digits123", seed=1, dtype="float64")
    _train(whole, Momentum(0.5, momentum=0.9), **kw).run()

    # A Ctrl-C just after epoch 0's last step.
    monkeypatch.setattr(trainer_mod, "make_engine", interrupt_at(7))
    out = tmp_path / "run"
    with pytest.raises(Interrupted):
        _train(build_model("digits123", seed=1, dtype="float64"),
               Momentum(0.5, momentum=0.9), out=out, **kw).run()
    monkeypatch.undo()
    with h5py.File(out / CHECKPOINT) as f:
        assert f.attrs["step"] == 6 and f["optimizer/velocity"][()].any()
    resumed = _train(build_model("digits123", seed=1, dtype="float64"),
                     Momentum(0.5, momentum=0.9), out=out, **kw).resume()
    resumed.run()
    assert resumed.model.flat.tobytes() == whole.flat.tobytes()


def test_reset_state_is_a_fresh_optimizer_for_every_rule():
    from partrain.nn.optim import OPTIMIZERS

    rng = np.random.default_rng(0)
    g1, g2 = rng.standard_normal(5), rng.standard_normal(5)
    for name, cls in OPTIMIZERS.items():
        used, fresh = cls(0.1), cls(0.1)
        w_used, w_fresh = np.ones(5), np.ones(5)
        used.step(w_used, g1)
        used.reset_state()
        w_used[...] = w_fresh
        used.step(w_used, g2)
        fresh.step(w_fresh, g2)
        assert w_used.tobytes() == w_fresh.tobytes(), name


# -- the seed presets ----------------------------------------------------------------

def _check_gradient(model, X, y, rng, per_param=8):
    loss, grads = model.loss_and_grads(X, y)
    for key, p in model.params.items():
        assert np.abs(grads[key]).max() > 1e-6, key      # not a saturated, vacuous check
        coords = sample_coords(p.size, per_param, rng)
        num = numeric_grad(lambda: model.loss(model.forward(X)[0], y)[0] / len(X), p, h=1e-5,
                           coords=coords)
        assert rel_error(grads[key].reshape(-1)[coords], num) < 1e-6, key


@pytest.mark.parametrize("name,shape", [("mnist-conv-seed", (1, 12, 12)),
                                        ("convnet3-seed", (3, 8, 8)),
                                        ("digits123-seed", (1, 6, 6))])
def test_seed_presets_that_are_gradients_pass_finite_differences(name, shape):
    rng = np.random.default_rng(0)
    model = build_model(name, seed=1, dtype="float64", input_shape=shape)
    if name != "digits123-seed":     # keep seed 003's own weights; widen the others
        model.flat[:] = rng.standard_normal(model.num_params) * 0.2
    X = rng.standard_normal((2,) + shape)   # continuous: no max-pool ties
    _check_gradient(model, X, rng.integers(0, model.num_classes, size=2), rng)
    assert PRESETS[name].is_gradient


def test_seed_presets_keep_their_architectures_and_carry_the_seeds_settings():
    for name, base in SEED_PRESETS.items():
        p, q = PRESETS[name], PRESETS[base]
        a, b = build_model(name, seed=3), build_model(base, seed=3)
        assert a.layout == b.layout, name
        assert (p.input_shape, p.num_classes, p.binary) == (q.input_shape, q.num_classes, q.binary)
        if name != "digits123-seed":
            assert a.flat.tobytes() == b.flat.tobytes(), name   # same draws
    assert PRESETS["mnist-conv-seed"].train == dict(
        PRESETS["mnist-conv"].train, batch_order="ordered", momentum_reset="epoch")
    assert PRESETS["convnet3-seed"].train == dict(PRESETS["convnet3"].train,
                                                  batch_order="replacement")
    assert PRESETS["convnet3-seed"].dataset == "cifar10-seed"
    assert PRESETS["lenet5-cat-seed"].train == PRESETS["lenet5-cat"].train
    # Defaults of the corrected presets are untouched.
    assert all("batch_order" not in PRESETS[b].train for b in SEED_PRESETS.values())
    described = {name: build_model(name).summary() for name in SEED_PRESETS}
    assert "ReLU(backward none)" in described["lenet5-cat-seed"]
    assert "ReLU(backward error_sign)" in described["lenet5-cat-seed"]
    assert "ties all" in described["convnet3-seed"] and "ties all" in described["digits123-seed"]


def test_lenet5_cat_seed_backward_is_seed_000s_not_the_gradient():
    rng = np.random.default_rng(0)
    seed = build_model("lenet5-cat-seed", seed=4, dtype="float64", input_shape=(3, 28, 28))
    right = build_model("lenet5-cat", seed=4, dtype="float64", input_shape=(3, 28, 28))
    X, y = rng.random((3, 3, 28, 28)), np.array([0, 1, 1])
    loss_seed, gs = seed.loss_and_grads(X, y)
    loss_right, gr = right.loss_and_grads(X, y)
    assert loss_seed == loss_right                            # the forward pass is the same
    for key in ("c5.W", "c5.b", "f6.W", "f6.b"):              # after a4: untouched
        np.testing.assert_array_equal(gs[key], gr[key])
    for key in ("c1.W", "c1.b", "c3.W", "c3.b"):              # before it: the seed's rules
        assert rel_error(gs[key], gr[key]) > 1e-2, key
    assert not PRESETS["lenet5-cat-seed"].is_gradient
    # The seed's a4 rule by hand: d(s4) = max(d(a4), 0), whatever s4 was.
    s4, a4 = seed.layers[4], seed.layers[5]
    dy = rng.standard_normal((1, 16, 1, 1))
    np.testing.assert_array_equal(a4.backward(dy, a4.forward(-dy)[1])[0], np.where(dy > 0, dy, 0))
    assert isinstance(s4, L.MaxPool2D) and s4.ties == "first"   # seed 000 uses argmax


def test_digits123_seed_starts_from_seed_003s_hand_set_weights():
    m = build_model("digits123-seed", seed=7, dtype="float64")
    np.testing.assert_array_equal(m.params["c1.W"][0, 0], [[-1.277, -0.454, 0.358],
                                                          [1.138, -2.398, -1.664],
                                                          [-0.794, 0.899, 0.675]])
    np.testing.assert_array_equal(m.params["c1.b"], [-3.363, -3.176, -1.739])
    np.testing.assert_array_equal(m.params["f2.b"], [2.060, -2.746, -1.818])
    assert m.params["f2.W"][4:8, 1].tolist() == [1.728, 0.003, -0.250, 1.898]
    assert build_model("digits123-seed", seed=0).flat.tobytes() == \
        build_model("digits123-seed", seed=9).flat.tobytes()
    # The seed's first sample (a vertical stroke in column 3) and the outputs it prints.
    x = np.zeros((1, 1, 6, 6))
    x[0, 0, :, 3] = 1
    np.testing.assert_allclose(m.forward(x)[0][0], [0.7859501531761532, 0.10857818037340734,
                                                    0.1369293947699326], rtol=1e-12)
    with pytest.raises(UsageError, match="hand-set"):
        build_model("digits123-seed", input_shape=(1, 8, 8))


def test_cli_passes_preset_and_flag_settings_into_train_settings(tmp_path):
    out = tmp_path / "seed"
    assert main(["train", "--model", "mnist-conv-seed", "--dataset", "digits32", "--steps",
                 "2", "--workers", "1", "--out", str(out), "--no-progress"]) == 0
    s = json.loads((out / "config.json").read_text())["settings"]
    assert (s["batch_order"], s["momentum_reset"], s["batch_size"]) == ("ordered", "epoch", 100)
    out = tmp_path / "flags"
    assert main(["train", "--model", "digits123", "--steps", "2", "--workers", "1",
                 "--batch-order", "replacement", "--momentum-reset", "epoch",
                 "--out", str(out), "--no-progress"]) == 0
    s = json.loads((out / "config.json").read_text())["settings"]
    assert (s["batch_order"], s["momentum_reset"]) == ("replacement", "epoch")


# -- seed 001's CIFAR-10 ---------------------------------------------------------------

def _write_cifar(folder, n_train, n_test):
    rng = np.random.default_rng(0)
    batches = {}
    for name, n in (("data_batch_1", n_train), ("test_batch", n_test)):
        batches[name] = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"labels": rng.integers(0, 10, n).tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(batches[name], f)
    return {k: (v[b"data"].reshape(-1, 3, 32, 32).astype(np.float64), np.array(v[b"labels"]))
            for k, v in batches.items()}


def test_cifar10_seed_is_raw_pixels_minus_the_subset_mean(tmp_path):
    raw = _write_cifar(tmp_path, 560, 60)
    (Xr, yr), (Tr, tr) = raw["data_batch_1"], raw["test_batch"]
    mean = Xr[:500].mean(axis=0)
    X, y = load_dataset("cifar10-seed", "train", tmp_path)
    Xt, yt = load_dataset("cifar10-seed", "test", tmp_path)
    assert X.shape == (500, 3, 32, 32) and Xt.shape == (50, 3, 32, 32)
    np.testing.assert_allclose(X, Xr[:500] - mean, rtol=0, atol=1e-12)   # not / 255
    np.testing.assert_allclose(Xt, Tr[:50] - mean, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(y, yr[:500])
    np.testing.assert_array_equal(yt, tr[:50])
    assert X.max() - X.min() > 200 and abs(X.mean()) < 1e-9
    splits = load_cifar10_seed(tmp_path)
    np.testing.assert_allclose(splits["val"][0], Xr[500:550] - mean, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(splits["val"][1], yr[500:550])
    small = load_cifar10_seed(tmp_path, num_training=6, num_validation=2, num_test=3)
    assert [len(small[k][0]) for k in ("train", "val", "test")] == [6, 2, 3]
    np.testing.assert_allclose(small["train"][0].mean(axis=0), 0, atol=1e-12)
    assert DATASETS["cifar10-seed"].files == ("data_batch_1", "test_batch")


def test_cifar10_seed_needs_the_whole_subset(tmp_path):
    _write_cifar(tmp_path, 520, 60)
    with pytest.raises(DataError, match="needs 550 images"):
        load_dataset("cifar10-seed", "train", tmp_path)


# -- exact zeros in the FFT convolution -------------------------------------------

def _patchy_images(rng, n=3, size=64):
    """One all-black image, the others black but for a random rectangle."""
    X = np.zeros((n, 3, size, size))
    a, b, c = size // 3, size * 4 // 5, size // 2
    X[1, :, a:b, c:] = rng.random((3, b - a, size - c))
    X[2, :, :c, :b] = rng.random((3, c, b))
    return X


def test_fft_conv_gives_exact_zeros_where_every_product_is_zero():
    rng = np.random.default_rng(0)
    X = _patchy_images(rng, size=40)
    for table, cin, cout, pad in ((None, 3, 5, 0), (None, 3, 5, 2),
                                  ([[0, 1], [1, 2], [2], [0, 2]], 3, 4, 1)):
        fft = L.Conv2D(cin, cout, 9, table=table, pad=pad, method="fft")
        ref = L.Conv2D(cin, cout, 9, table=table, pad=pad, method="im2col")
        params = fft.init_params(np.random.default_rng(1))
        params["b"] = rng.standard_normal(cout)
        fft.params, ref.params = params, params
        (yf, cf), (yr, cr) = fft.forward(X), ref.forward(X)
        blank = yr == params["b"][:, None, None]          # im2col: sum of zeros, + b
        assert blank.mean() > 0.3
        np.testing.assert_array_equal(yf[blank], yr[blank])
        np.testing.assert_allclose(yf, yr, rtol=0, atol=1e-13)
        # The gradients keep the FFT's rounding: no gate reads them.
        dy = rng.standard_normal(yf.shape)
        (dxf, gf), (dxr, gr) = fft.backward(dy, cf), ref.backward(dy, cr)
        np.testing.assert_allclose(dxf, dxr, rtol=0, atol=1e-12)
        np.testing.assert_allclose(gf["W"], gr["W"], rtol=0, atol=1e-11)


def _c1_bias_gradient(X, y, method):
    """lenet5-cat's first-step C1 bias gradient with C1 and C3 computed by ``method``."""
    m = build_model("lenet5-cat", seed=0, dtype="float64")
    for layer in (m.layers[0], m.layers[3]):
        layer.method = method
    return m.loss_and_grads(X, y)[1]["c1.b"]


def test_black_patches_give_the_im2col_c1_bias_gradient(monkeypatch):
    """lenet5-cat's C1 and C3 run as FFTs; on black patches their outputs must be the
    exact zeros the ReLU gate x > 0 blocks, as im2col's are."""
    rng = np.random.default_rng(0)
    X, y = _patchy_images(rng), np.array([0, 1, 0])

    def c1_bias_gradient(method):
        return _c1_bias_gradient(X, y, method)

    ref = c1_bias_gradient("im2col")
    assert ref.any()
    np.testing.assert_allclose(c1_bias_gradient("fft"), ref, rtol=1e-10, atol=1e-16)
    all_black = build_model("lenet5-cat", seed=0, dtype="float64")
    assert not all_black.loss_and_grads(X[:1], y[:1])[1]["c1.b"].any()
    # Without the exact zeros the FFT's rounding noise opens the gate.
    monkeypatch.setattr("partrain.nn.fft.structural_zeros", lambda *args: None)
    assert rel_error(c1_bias_gradient("fft"), ref) > 1e-3


def test_real_cat_images_with_black_pixels_agree_with_im2col(shared_data, monkeypatch):
    from numpy.lib.stride_tricks import sliding_window_view

    X, y = load_dataset("catvnoncat", "train", shared_data / "catvnoncat")
    black = (X == 0).all(axis=1)                 # black in all three channels
    patch = sliding_window_view(black, (9, 9), axis=(1, 2)).all(axis=(-2, -1)).any(axis=(1, 2))
    assert patch.sum() == 3                      # images 140, 195, 203 hold a black 9x9
    pick = np.flatnonzero(patch).tolist() + [0, 1, 2]
    X, y = X[pick], y[pick]
    ref = _c1_bias_gradient(X, y, "im2col")
    np.testing.assert_allclose(_c1_bias_gradient(X, y, "fft"), ref, rtol=1e-10)
    monkeypatch.setattr("partrain.nn.fft.structural_zeros", lambda *args: None)
    assert rel_error(_c1_bias_gradient(X, y, "fft"), ref) > 1e-3
