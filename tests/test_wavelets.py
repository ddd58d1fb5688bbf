"""Tests for the orthonormal periodized DWT; PyWavelets is the independent truth."""

import copy
import pickle
import warnings

import numpy as np
import pytest
import pywt
import torch

from retune_sklearn.wavelets import WaveletTransform

WAVELETS = ["haar", "db2", "db4", "sym8", "coif1"]
LEVELS = [1, 2, 3]
SHAPES = [(16,), (64,), (32, 32), (64, 64), (32, 64)]


def _valid(wavelet, levels, shape):
    """Independent validity rule: divisibility and pywt.dwt_max_level per axis."""
    flen = pywt.Wavelet(wavelet).dec_len
    for n in shape:
        max_level = max(pywt.dwt_max_level(n, flen), 1 if n % 2 == 0 else 0)
        if n % 2 ** levels or levels > max_level:
            return False
    return True


CASES = [
    pytest.param(w, lev, s, id=f"{w}-L{lev}-{'x'.join(map(str, s))}")
    for w in WAVELETS for lev in LEVELS for s in SHAPES if _valid(w, lev, s)
]


def _pywt_packed(x, wavelet, levels):
    """Reference coefficients packed as pywt.coeffs_to_array does."""
    with warnings.catch_warnings():  # pywt warns when a level is near its limit
        warnings.simplefilter("ignore")
        if x.ndim == 1:
            coeffs = pywt.wavedec(x, wavelet, mode="periodization", level=levels)
        else:
            coeffs = pywt.wavedec2(x, wavelet, mode="periodization", level=levels)
    return pywt.coeffs_to_array(coeffs)


def _rand(shape, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=dtype)


@pytest.mark.parametrize("wavelet, levels, shape", CASES)
def test_matches_pywt(wavelet, levels, shape):
    x = _rand(shape)
    W = WaveletTransform(wavelet, levels, ndim=len(shape))
    ref, _ = _pywt_packed(x.numpy(), wavelet, levels)
    np.testing.assert_allclose(W.forward(x).numpy(), ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize("wavelet, levels, shape", CASES)
def test_reconstruction_parseval_adjoint(wavelet, levels, shape):
    W = WaveletTransform(wavelet, levels, ndim=len(shape))
    x, c = _rand(shape, 1), _rand(shape, 2)
    wx = W.forward(x)
    torch.testing.assert_close(W.inverse(wx), x, atol=1e-10, rtol=0)
    torch.testing.assert_close(W.forward(W.inverse(c)), c, atol=1e-10, rtol=0)
    torch.testing.assert_close(wx.norm(), x.norm(), atol=1e-10, rtol=0)
    lhs, rhs = (wx * c).sum(), (x * W.inverse(c)).sum()
    torch.testing.assert_close(lhs, rhs, atol=1e-10, rtol=0)


@pytest.mark.parametrize("wavelet, n", [("sym8", 8), ("db4", 4), ("coif1", 4)])
def test_filter_longer_than_signal(wavelet, n):
    # One level is allowed on any even size; the wrap must repeat samples.
    W = WaveletTransform(wavelet, levels=1, ndim=1)
    x = _rand((n,))
    a, d = pywt.dwt(x.numpy(), wavelet, mode="periodization")
    np.testing.assert_allclose(W.forward(x).numpy(), np.concatenate([a, d]), atol=1e-10)
    torch.testing.assert_close(W.inverse(W.forward(x)), x, atol=1e-10, rtol=0)
    W2 = WaveletTransform(wavelet, levels=1, ndim=2)
    x2 = _rand((n, 2 * n))
    ref, _ = _pywt_packed(x2.numpy(), wavelet, 1)
    np.testing.assert_allclose(W2.forward(x2).numpy(), ref, atol=1e-10)
    torch.testing.assert_close(W2.inverse(W2.forward(x2)), x2, atol=1e-10, rtol=0)


@pytest.mark.parametrize("ndim, shape", [(1, (32,)), (2, (16, 32))])
def test_batch_axes_match_loop(ndim, shape):
    W = WaveletTransform("db2", levels=2, ndim=ndim)
    x = _rand((2, 3, *shape))
    c = W.forward(x)
    assert c.shape == x.shape
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(c[i, j], W.forward(x[i, j]), atol=1e-12, rtol=0)
    torch.testing.assert_close(W.inverse(c), x, atol=1e-10, rtol=0)


def test_float32():
    W = WaveletTransform("db4", levels=3)
    x = _rand((4, 1, 64, 64), dtype=torch.float32)
    c = W.forward(x)
    assert c.dtype == torch.float32 and c.shape == x.shape
    torch.testing.assert_close(W.inverse(c), x, atol=1e-5, rtol=0)
    ref, _ = _pywt_packed(x[0, 0].double().numpy(), "db4", 3)
    np.testing.assert_allclose(c[0, 0].numpy(), ref, atol=1e-4)


@pytest.mark.parametrize("wavelet, levels, ndim, shape", [
    ("db2", 2, 1, (2, 16)), ("db2", 1, 2, (1, 8, 8)), ("haar", 2, 2, (8, 8))])
def test_gradcheck(wavelet, levels, ndim, shape):
    W = WaveletTransform(wavelet, levels=levels, ndim=ndim)
    x = _rand(shape).requires_grad_()
    assert torch.autograd.gradcheck(W.forward, (x,))
    assert torch.autograd.gradcheck(W.inverse, (x,))


@pytest.mark.parametrize("levels", LEVELS)
def test_subband_index_2d(levels):
    shape = (32, 64)
    W = WaveletTransform("haar", levels)
    index, names = W.subband_index(shape)
    assert index.shape == shape and index.dtype == torch.long
    assert len(names) == 3 * levels + 1 and names[0] == f"a{levels}"
    assert names[1:4] == [f"h{levels}", f"v{levels}", f"d{levels}"]
    assert names[-3:] == ["h1", "v1", "d1"]
    levs = W.subband_levels()
    assert len(levs) == len(names) and levs[0] == levels + 1
    assert all(int(n[1:]) == lv for n, lv in zip(names[1:], levs[1:]))
    # Each label covers exactly its pywt block (position and size).
    _, slices = _pywt_packed(np.zeros(shape), "haar", levels)
    key = {"h": "da", "v": "ad", "d": "dd"}
    for label, name in enumerate(names):
        if name[0] == "a":
            block = slices[0]
        else:
            block = slices[1 + levels - int(name[1:])][key[name[0]]]
        mask = torch.zeros(shape, dtype=torch.bool)
        mask[block] = True
        assert torch.equal(index == label, mask), name


@pytest.mark.parametrize("levels", LEVELS)
def test_subband_index_1d(levels):
    n = 64
    W = WaveletTransform("db2", levels, ndim=1)
    index, names = W.subband_index((n,))
    assert names == [f"a{levels}"] + [f"d{j}" for j in range(levels, 0, -1)]
    assert W.subband_levels() == [levels + 1] + list(range(levels, 0, -1))
    _, slices = _pywt_packed(np.zeros(n), "db2", levels)
    blocks = [slices[0]] + [s["d"] for s in slices[1:]]
    for label, block in enumerate(blocks):
        mask = torch.zeros(n, dtype=torch.bool)
        mask[block] = True
        assert torch.equal(index == label, mask)


def test_errors():
    with pytest.raises(ValueError, match=r"levels=3.*size 16"):
        WaveletTransform("sym8", 3).check_shape((16, 16))
    with pytest.raises(ValueError, match=r"levels=3.*size 20"):
        WaveletTransform("haar", 3).check_shape((64, 20))
    with pytest.raises(ValueError, match=r"levels=2.*size 6"):
        WaveletTransform("haar", 2, ndim=1).forward(torch.zeros(3, 6))
    with pytest.raises(ValueError, match="haar"):
        WaveletTransform("nope")
    with pytest.raises(ValueError, match="orthogonal"):
        WaveletTransform("bior2.2")
    with pytest.raises(ValueError, match="levels"):
        WaveletTransform("haar", 0)
    with pytest.raises(ValueError, match="ndim"):
        WaveletTransform("haar", 1, ndim=3)


def test_pickle_and_copy_drop_cache():
    W = WaveletTransform("db2", 2)
    x = _rand((16, 16))
    c = W.forward(x)
    assert W._cache
    for W2 in (pickle.loads(pickle.dumps(W)), copy.deepcopy(W)):
        assert W2._cache == {}
        torch.testing.assert_close(W2.forward(x), c, atol=0, rtol=0)
