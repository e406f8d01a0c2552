"""The FFT convolution's numerics agree with im2col on LeNet-5-cat's shapes."""

import numpy as np
import pytest

from partrain.nn import Conv2D

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def test_fft_and_im2col_agree_on_lenet5_cat_shapes():
    """C1 and C3 of LeNet-5-cat (9x9 kernels, C3's table): same outputs and gradients."""
    rng = np.random.default_rng(10)
    for cin, cout, size, table in [(3, 6, 64, None), (6, 16, 28, [[0, 1, 2]] * 8 + [[3, 4, 5]] * 8)]:
        x = rng.random((3, cin, size, size))
        a = Conv2D(cin, cout, 9, table=table, method="im2col")
        b = Conv2D(cin, cout, 9, table=table, method="fft")
        params = {k: rng.standard_normal(s) for k, s in a.param_shapes().items()}
        a.params, b.params = params, params
        (ya, ca), (yb, cb) = a.forward(x), b.forward(x)
        np.testing.assert_allclose(yb, ya, rtol=1e-9, atol=1e-9)
        dy = rng.standard_normal(ya.shape)
        (dxa, ga), (dxb, gb) = a.backward(dy, ca), b.backward(dy, cb)
        np.testing.assert_allclose(dxb, dxa, rtol=1e-9, atol=1e-9)
        for key in ga:
            np.testing.assert_allclose(gb[key], ga[key], rtol=1e-9, atol=1e-8)


@pytest.mark.parametrize("links", [np.ones((3, 4), bool),
                                   np.array([[1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 0, 1]], bool)])
def test_structural_zeros_are_the_windows_without_a_nonzero_in_a_linked_map(links):
    """Both ways of finding them (every map linked: maps ORed first; a table: per map)
    give what a loop over every window says."""
    from partrain.nn.fft import structural_zeros, zeros_per_map

    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 3, 12, 11)) * (rng.random((2, 3, 12, 11)) < 0.08)
    k = 3
    expected = np.zeros((2, 4, 10, 9), bool)
    for n in range(2):
        for m in range(4):
            for i in range(10):
                for j in range(9):
                    window = a[n, links[:, m], i : i + k, j : j + k]
                    expected[n, m, i, j] = not np.any(window != 0)
    assert expected.any() and not expected.all()
    np.testing.assert_array_equal(structural_zeros(a, k, links), expected)
    np.testing.assert_array_equal(zeros_per_map(a, k, links), expected)   # any links
