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


# --- fast (polyphase) vs fallback (index-based) paths; adjoint gradient -------

def _transform(wavelet, levels, ndim, polyphase=True, adjoint_grad=True):
    W = WaveletTransform(wavelet, levels, ndim=ndim)
    W._use_polyphase, W._adjoint_grad = polyphase, adjoint_grad  # private switches
    return W


# The polyphase path needs h-1 <= n/2 (h = F/2) on every axis of a level.
# pywt's maximum level guarantees it from level 2 on, so only one-level
# transforms of signals shorter than about the filter fall back (db4 on 4,
# sym8 on 8 or 12, coif1 on 2); (8, 16) falls back because of one axis.
PATH_CASES = [("haar", 3, (64,)), ("db2", 3, (32, 64)), ("db4", 3, (64, 64)),
              ("db4", 1, (4,)), ("db4", 1, (4, 16)), ("sym8", 1, (16, 16)),
              ("sym8", 1, (8, 16)), ("sym8", 1, (12,)), ("coif1", 1, (2,)),
              ("coif1", 2, (32,)), ("sym8", 2, (64,))]


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
@pytest.mark.parametrize("wavelet, levels, shape", PATH_CASES)
def test_fast_and_fallback_paths_agree(wavelet, levels, shape, dtype, tol):
    fast = _transform(wavelet, levels, len(shape))
    slow = _transform(wavelet, levels, len(shape), polyphase=False, adjoint_grad=False)
    x, c = _rand((3, *shape), 1, dtype), _rand((3, *shape), 2, dtype)
    torch.testing.assert_close(fast.forward(x), slow.forward(x), atol=tol, rtol=0)
    torch.testing.assert_close(fast.inverse(c), slow.inverse(c), atol=tol, rtol=0)


def test_polyphase_used_unless_wrap_exceeds_half_size(monkeypatch):
    W = WaveletTransform("db4", 1, ndim=1)  # h - 1 = 3
    sizes = []
    index = W._wrap_index
    monkeypatch.setattr(W, "_wrap_index", lambda n, dev: sizes.append(n) or index(n, dev))
    W.inverse(W.forward(_rand((6,))))
    assert sizes == []  # half size 3: polyphase, padding wraps exactly once
    W.inverse(W.forward(_rand((4,))))
    assert sizes == [4, 4]  # half size 2 < 3: index-based both ways


def test_polyphase_weights_cached_per_dtype():
    W = WaveletTransform("db2", 1)
    w64 = W._polyphase_weights(torch.device("cpu"), torch.float64)
    assert W._polyphase_weights(torch.device("cpu"), torch.float64) is w64
    w32 = W._polyphase_weights(torch.device("cpu"), torch.float32)
    assert w32[0].dtype == torch.float32
    torch.testing.assert_close(w32[1], w64[1].float())


@pytest.mark.parametrize("wavelet, levels, shape", [("db4", 2, (2, 32)),
                                                    ("db2", 2, (2, 16, 32)),
                                                    ("sym8", 1, (8, 16))])
def test_adjoint_gradient_matches_autograd(wavelet, levels, shape):
    # The gradient is computed as the adjoint transform; compare with autograd
    # through the ops on a nonlinear loss, for forward and inverse.
    ndim = 1 if len(shape) == 2 else 2
    x = _rand(shape, 3)
    grads = []
    for adjoint_grad in (True, False):
        W = _transform(wavelet, levels, ndim, adjoint_grad=adjoint_grad)
        xg = x.clone().requires_grad_()
        (W.forward(xg).pow(3).sum() + W.inverse(xg.sin()).pow(3).sum()).backward()
        grads.append(xg.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-12, rtol=0)


# torch.func's first use triggers torch's own torch.jit.script deprecation warning.
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_adjoint_gradient_higher_order_jvp_vmap():
    W = WaveletTransform("db2", 1)
    x = _rand((1, 8, 8)).requires_grad_()
    assert torch.autograd.gradgradcheck(lambda v: W.inverse(W.forward(v) ** 3), (x,))
    t = _rand((1, 8, 8), 4)
    _, tangent = torch.func.jvp(W.forward, (x.detach(),), (t,))
    torch.testing.assert_close(tangent, W.forward(t), atol=1e-12, rtol=0)
    batch = _rand((3, 16, 16), 5)
    torch.testing.assert_close(torch.func.vmap(W.inverse)(batch), W.inverse(batch))


def test_backward_keeps_no_tensors():
    # Linear map with the adjoint as gradient: autograd needs no saved activations.
    saved = []
    W = WaveletTransform("db4", 3)
    x = _rand((2, 64, 64)).requires_grad_()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        W.inverse(W.forward(x)).sum().backward()
    assert saved == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("wavelet, levels, shape", [("db4", 3, (64, 64)), ("sym8", 1, (8, 16)),
                                                    ("haar", 2, (64,))])
def test_cuda_matches_cpu(wavelet, levels, shape):
    W = WaveletTransform(wavelet, levels, ndim=len(shape))
    x = _rand((2, *shape))
    xg = x.cuda().requires_grad_()
    c = W.forward(xg)
    torch.testing.assert_close(c.cpu(), W.forward(x), atol=1e-10, rtol=0)
    torch.testing.assert_close(W.inverse(c).cpu(), x, atol=1e-10, rtol=0)
    c.pow(3).sum().backward()
    torch.testing.assert_close(xg.grad.cpu(), W.inverse(3 * W.forward(x) ** 2), atol=1e-10, rtol=0)
    assert ("w", xg.device, torch.float64) in W._cache  # cached per device


# --- dense matrix path (default) vs the conv paths --------------------------------

MATRIX_CASES = [("haar", 3, (64,)), ("db2", 3, (32, 64)), ("db4", 3, (64, 64)),
                ("db4", 1, (6,)), ("sym8", 1, (16, 16)), ("coif1", 2, (32,)),
                ("sym8", 2, (64,)), ("db4", 2, (32, 48))]


# float32: the polyphase 2-D conv sums F^2 terms per output (sym8: 256) and errs
# up to ~2.5e-6 on these inputs; the matrix path ~3x less (test_fast_and_fallback_paths_agree).
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 4e-6)])
@pytest.mark.parametrize("wavelet, levels, shape", MATRIX_CASES)
def test_matrix_and_polyphase_paths_agree(wavelet, levels, shape, dtype, tol):
    matrix = _transform(wavelet, levels, len(shape))
    conv = _transform(wavelet, levels, len(shape))
    conv._use_matrix = False
    assert matrix._matrix_path(shape) and not conv._matrix_path(shape)
    x = _rand((3, *shape), 1, dtype)
    torch.testing.assert_close(matrix.forward(x), conv.forward(x), atol=tol, rtol=0)
    torch.testing.assert_close(matrix.inverse(x), conv.inverse(x), atol=tol, rtol=0)


def test_matrix_path_size_limit():
    # Default limit 32 * max(F, 4) per axis (measured crossover with the convs).
    assert WaveletTransform("haar", 1)._matrix_path((128, 128))
    assert not WaveletTransform("haar", 1)._matrix_path((128, 256))
    assert WaveletTransform("db4", 1, ndim=1)._matrix_path((256,))
    assert not WaveletTransform("db4", 1, ndim=1)._matrix_path((512,))
    assert not WaveletTransform("db4", 1, ndim=1)._matrix_path((4,))  # index-based
    W = WaveletTransform("db2", 3)
    W._matrix_max_size = 16  # above it: the polyphase path, same coefficients
    x = _rand((2, 32, 64))
    ref, _ = _pywt_packed(x[1].numpy(), "db2", 3)
    np.testing.assert_allclose(W.forward(x)[1].numpy(), ref, atol=1e-10, rtol=0)
    assert not any(key[0] == "D" for key in W._cache)


def test_level_matrix_orthonormal_and_cached():
    W = WaveletTransform("sym8", 2)
    cpu = torch.device("cpu")
    d = W._level_matrix(16, cpu, torch.float64)
    assert W._level_matrix(16, cpu, torch.float64) is d
    torch.testing.assert_close(d @ d.T, torch.eye(16, dtype=torch.float64), atol=1e-12, rtol=0)
    d32 = W._level_matrix(16, cpu, torch.float32)
    assert d32.dtype == torch.float32
    # Column k is the one-level pywt transform of the unit vector e_k.
    cols = [np.concatenate(pywt.dwt(e, "sym8", mode="periodization")) for e in np.eye(16)]
    np.testing.assert_allclose(d.numpy(), np.stack(cols, axis=1), atol=1e-12)


def test_matrix_path_few_aten_calls():
    from torch.profiler import profile
    W = WaveletTransform("db4", 3)
    x = _rand((4, 64, 64), dtype=torch.float32)
    c = W.forward(x)
    for fn in (W.forward, W.inverse):
        with torch.no_grad(), profile() as prof:
            fn(c)
        n_ops = sum(1 for e in prof.events() if e.name.startswith("aten::"))
        assert n_ops <= 45, n_ops  # 29-34 with torch 2.13; the polyphase path: ~270


# --- translation-invariant (cycle-spun) frame ------------------------------------

def _shifts(n_shifts, ndim):
    grid = torch.cartesian_prod(*[torch.arange(n_shifts)] * ndim).reshape(-1, ndim)
    return [tuple(int(v) for v in shift) for shift in grid]


def _frame_analysis_reference(W, x, n_shifts):
    """regularizers.WaveletL1.analysis with translation_invariant=True, as written there."""
    axes = tuple(range(-W.ndim, 0))
    shifts = _shifts(n_shifts, W.ndim)
    shifted = torch.stack([torch.roll(x, s, axes) for s in shifts], dim=1)
    return W.forward(shifted) / len(shifts) ** 0.5


def _frame_synthesis_reference(W, u, n_shifts):
    axes = tuple(range(-W.ndim, 0))
    shifts = _shifts(n_shifts, W.ndim)
    copies = W.inverse(u)
    unshifted = [torch.roll(copies[:, i], tuple(-v for v in s), axes)
                 for i, s in enumerate(shifts)]
    return torch.stack(unshifted).sum(dim=0) / len(shifts) ** 0.5


FRAME_CASES = [("db4", 3, 1, (64,), 2), ("haar", 2, 1, (32,), 3), ("db2", 1, 1, (3, 16), 2),
               ("db4", 3, 2, (64, 64), 2), ("db2", 2, 2, (32, 64), 3), ("haar", 1, 2, (8, 8), 1),
               ("sym8", 1, 2, (3, 16, 32), 2), ("db2", 2, 2, (2, 2, 16, 16), 2),
               ("db4", 1, 1, (4,), 2), ("db4", 1, 2, (4, 16), 2)]  # last two: fallback path


@pytest.mark.parametrize("wavelet, levels, ndim, shape, n_shifts", FRAME_CASES)
def test_frame_matches_rolled_transforms(wavelet, levels, ndim, shape, n_shifts):
    W = WaveletTransform(wavelet, levels, ndim=ndim)
    x = _rand((2, *shape), 1)
    ref = _frame_analysis_reference(W, x, n_shifts)
    out = W.frame_forward(x, n_shifts)
    assert out.shape == (2, n_shifts ** ndim, *shape) and out.is_contiguous()
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    u = _rand(ref.shape, 2)
    torch.testing.assert_close(W.frame_inverse(u, n_shifts),
                               _frame_synthesis_reference(W, u, n_shifts), atol=1e-12, rtol=0)
    # Parseval frame: synthesis inverts analysis, norms kept, adjoint pair.
    torch.testing.assert_close(W.frame_inverse(out, n_shifts), x, atol=1e-10, rtol=0)
    torch.testing.assert_close(out.norm(), x.norm(), atol=1e-10, rtol=0)
    torch.testing.assert_close((out * u).sum(), (x * W.frame_inverse(u, n_shifts)).sum(),
                               atol=1e-10, rtol=0)


def test_frame_float32_and_conv_path():
    W = WaveletTransform("db4", 3)
    conv = WaveletTransform("db4", 3)
    conv._use_matrix = False  # rolls + polyphase transforms
    x = _rand((3, 2, 64, 64), 1, torch.float32)
    out = W.frame_forward(x, 2)
    torch.testing.assert_close(out, conv.frame_forward(x, 2), atol=2e-6, rtol=0)
    torch.testing.assert_close(W.frame_inverse(out, 2), conv.frame_inverse(out, 2),
                               atol=2e-6, rtol=0)
    ref = _frame_analysis_reference(W, x.double(), 2)
    torch.testing.assert_close(out.double(), ref, atol=2e-6, rtol=0)


def test_frame_accepts_any_strides():
    W = WaveletTransform("db2", 2)
    x = _rand((2, 16, 32), 1)
    u = W.frame_forward(x, 2)
    ut = u.transpose(-1, -2).contiguous().transpose(-1, -2)  # same values, column-major copies
    torch.testing.assert_close(W.frame_inverse(ut, 2), x, atol=1e-10, rtol=0)
    xt = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    torch.testing.assert_close(W.frame_forward(xt, 2), u, atol=1e-12, rtol=0)


def test_frame_shifts_order():
    assert WaveletTransform("haar", 1).frame_shifts(2) == _shifts(2, 2)
    assert WaveletTransform("haar", 1, ndim=1).frame_shifts(3) == _shifts(3, 1)


def test_frame_errors():
    W = WaveletTransform("haar", 2)
    x = torch.zeros(2, 8, 8)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="n_shifts"):
            W.frame_forward(x, bad)
    with pytest.raises(ValueError, match="S = n_shifts"):
        W.frame_inverse(torch.zeros(2, 3, 8, 8), 2)
    with pytest.raises(ValueError, match="Expected"):
        W.frame_forward(torch.zeros(8, 8), 2)
    with pytest.raises(ValueError, match="size 6"):
        W.frame_forward(torch.zeros(2, 8, 6), 2)
    with pytest.raises(TypeError):
        W.frame_forward(torch.zeros(2, 8, 8, dtype=torch.long), 2)


@pytest.mark.parametrize("levels, ndim, shape", [(2, 1, (2, 16)), (1, 2, (2, 8, 8)),
                                                 (2, 2, (1, 2, 16, 16))])
def test_frame_gradients(levels, ndim, shape):
    W = WaveletTransform("db2", levels, ndim=ndim)
    x = _rand(shape, 3).requires_grad_()
    assert torch.autograd.gradcheck(lambda v: W.frame_forward(v, 2), (x,), fast_mode=True)
    u = _rand(W.frame_forward(x, 2).shape, 4).requires_grad_()
    assert torch.autograd.gradcheck(lambda v: W.frame_inverse(v, 2), (u,), fast_mode=True)
    # Adjoint gradient against autograd through the ops, on a nonlinear loss.
    grads = []
    for adjoint_grad in (True, False):
        Wg = _transform("db2", levels, ndim, adjoint_grad=adjoint_grad)
        xg, ug = x.detach().clone().requires_grad_(), u.detach().clone().requires_grad_()
        (Wg.frame_forward(xg, 2).pow(3).sum() + Wg.frame_inverse(ug.sin(), 2).pow(3).sum()).backward()
        grads.append((xg.grad, ug.grad))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-12, rtol=0)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        W.frame_inverse(W.frame_forward(x, 2), 2).sum().backward()
    assert saved == []


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("error:There is a performance drop")  # every op has a vmap rule
def test_frame_higher_order_jvp_vmap():
    W = WaveletTransform("db2", 1)
    x = _rand((1, 8, 8)).requires_grad_()
    assert torch.autograd.gradgradcheck(lambda v: W.frame_inverse(W.frame_forward(v, 2) ** 3, 2),
                                        (x,))
    t = _rand((1, 8, 8), 4)
    _, tangent = torch.func.jvp(lambda v: W.frame_forward(v, 2), (x.detach(),), (t,))
    torch.testing.assert_close(tangent, W.frame_forward(t, 2), atol=1e-12, rtol=0)
    batch = _rand((3, 2, 16, 16), 5)
    coeffs = torch.func.vmap(lambda v: W.frame_forward(v, 2))(batch)
    torch.testing.assert_close(coeffs, torch.stack([W.frame_forward(v, 2) for v in batch]))
    torch.testing.assert_close(torch.func.vmap(lambda v: W.frame_inverse(v, 2))(coeffs), batch)


def test_matrix_path_float32_error():
    # Separable products: float32 round-off well below the fast-vs-fallback tolerance.
    for wavelet, levels, shape in [("sym8", 1, (16, 16)), ("db4", 3, (64, 64))]:
        W = WaveletTransform(wavelet, levels)
        x = _rand((3, *shape), 1, torch.float32)
        for fn in (W.forward, W.inverse):
            err = (fn(x).double() - fn(x.double())).abs().max()
            assert err < 1.2e-6, (wavelet, fn.__name__, float(err))
