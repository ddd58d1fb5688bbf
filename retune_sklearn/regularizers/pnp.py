"""Plug-and-play with any torch module: :class:`PnP`."""

import copy
import pickle

import torch
from torch.func import functional_call

from ._base import Regularizer, scalar_weight


class PnP(Regularizer):
    """Plug-and-play forward–backward around any denoiser ``torch.nn.Module``.

    The prox step of ``τ λ R`` is replaced by the denoiser ``D``, with the
    learned weight "strength" ``λ`` and the step ``τ`` entering through
    ``t = τ λ`` (the only scale the forward–backward step hands the prox):

    * ``noise_conditional=False``: ``v ↦ v + t (D(v) − v)``. ``t = 1`` is
      classical PnP-FB (``D`` applied once), ``t → 0`` the identity, and in
      between a convex combination of ``D`` and the identity, non-expansive
      whenever ``D`` is: a frozen denoiser trained at one noise level gets
      a continuous strength. Read as ``v − t (v − D(v))`` it is a gradient step
      of size ``τ`` on ``λ R`` with ``∇R(v) = v − D(v)`` (regularization by
      denoising); :class:`LearnedDenoiser` uses the same form.
    * ``noise_conditional=True``: ``v ↦ D(v, σ)`` with ``σ = √(τ λ)``: the
      prox of ``τ λ R`` is the MAP denoiser of Gaussian noise of variance
      ``τ λ`` under the prior ``exp(−R)``, so a denoiser conditioned on its
      noise level is used at that level. ``σ`` is a tensor of shape
      ``(N, 1, 1, 1)`` (``(N, 1, 1)`` for 1-D signals), one value per sample,
      broadcastable against the input.

    Parameters
    ----------
    denoiser : torch.nn.Module
        ``D``, taking and returning batches of shape ``(N, C, H, W)`` (images
        ``(H, W)`` have ``C = 1``, ``(C, H, W)`` their ``C``) or ``(N, 1, L)``
        (1-D signals of length ``L``). Never modified: the regularizer works
        on a deep copy cast to the problem's dtype and device, in evaluation
        mode (dropout off, batch-norm statistics frozen). See
        :mod:`retune_sklearn.zoo` for networks to train from scratch.
    trainable : bool, default=False
        False: the module's parameters stay as given and ReTune learns the
        strength (and the step size with ``learn_step_size=True``): nothing
        of the module enters θ. True: its parameters that require gradients
        are copied into θ's ``network`` (float64 copies, cast to the problem's
        dtype), drive the module through :func:`torch.func.functional_call`
        and are learned with the strength (``learn_weights=True``); the fitted
        values are the estimator's ``regularizer_params_`` (NumPy, by
        parameter name), which ``transform`` uses; the module kept in
        ``regularizer_`` keeps its initial weights.
    noise_conditional : bool, default=False
        Call ``D(v, σ)`` instead of mixing ``D(v)`` with ``v`` (see above).

    Notes
    -----
    There is no explicit penalty (:meth:`penalty` raises), so the estimator
    reports no energy. Use a larger ``init_weight`` than for classical
    weights: with mixing, ``init_weight=1.0`` starts at plain PnP-FB when
    ``τ = 1`` (``step_scale = 1``, ``‖A‖ = 1``); noise-conditional, ``"auto"``
    (``0.1 σ̂``) starts at ``σ ≈ √(0.1 σ̂)``. A first call checks that the
    module accepts and returns the signal layout (a clear ``ValueError``
    otherwise).

    Pickling (``pickle``, ``joblib``) pickles the module: its class must be
    importable (defined at module level, not inside a function, no lambdas
    or open files among its attributes). Otherwise pickling the regularizer,
    or an estimator holding it, raises a ``TypeError`` naming the module's
    class (the cause chained). ``clone`` and ``GridSearchCV`` deep-copy the
    module (no pickling). ``persistence.save_weights`` cannot describe a
    module and refuses such models with a ``TypeError``: pickle them.
    """

    _parameter_constraints = {
        "denoiser": [torch.nn.Module],
        "trainable": ["boolean"],
        "noise_conditional": ["boolean"],
    }

    def __init__(self, denoiser, trainable=False, noise_conditional=False):
        self.denoiser = denoiser
        self.trainable = trainable
        self.noise_conditional = noise_conditional

    def weight_names(self, signal_shape):
        self.check_signal_shape(signal_shape)
        return ["strength"]

    def _check_signal_shape(self, signal_shape):
        probe = torch.zeros((1, *signal_shape), dtype=torch.float64)
        try:
            with torch.no_grad():
                out = self._apply(probe, torch.ones(1, dtype=torch.float64), None)
        except Exception as error:
            raise ValueError(f"PnP's denoiser {type(self.denoiser).__name__} failed on a batch "
                             f"of shape {tuple(self._module_layout(probe).shape)} (signals of "
                             f"shape {signal_shape}): {type(error).__name__}: {error}") from error
        if out.shape != probe.shape:
            raise ValueError(f"PnP's denoiser {type(self.denoiser).__name__} must return its "
                             f"input's shape {tuple(probe.shape)}; got {tuple(out.shape)}.")

    def _trainable_parameters(self, module):
        return {name: p for name, p in module.named_parameters() if p.requires_grad}

    def init_parameters(self, signal_shape, generator):
        """The module's parameters (float64 copies) if ``trainable``, else none.

        ``generator`` is unused: the network starts from the user's weights.
        """
        self.check_signal_shape(signal_shape)
        if not self.trainable:
            return {}
        return {name: p.detach().to(device="cpu", dtype=torch.float64).clone()
                for name, p in self._trainable_parameters(self.denoiser).items()}

    def _module(self, dtype, device):
        """The deep copy of the denoiser in ``dtype`` on ``device`` (memoized)."""
        def build():
            module = copy.deepcopy(self.denoiser).to(device=device, dtype=dtype).eval()
            return module.requires_grad_(False)  # θ's tensors (or nothing) are learned
        return self._cached(("module", dtype, str(device)), build)

    @staticmethod
    def _module_layout(v):
        """A batch of signals as the module's ``(N, C, H, W)`` or ``(N, 1, L)`` input."""
        return v.unsqueeze(1) if v.dim() in (2, 3) else v

    def _apply(self, v, t, network):
        """``D`` applied as the prox stand-in, with ``t = τ λ`` per sample."""
        module = self._module(v.dtype, v.device)
        h = self._module_layout(v)
        t = scalar_weight(t, h)

        def denoise(*args):
            if network:
                return functional_call(module, network, args)
            return module(*args)
        if self.noise_conditional:
            return denoise(h, t.sqrt()).reshape(v.shape)
        return (h + t * (denoise(h) - h)).reshape(v.shape)

    def prox(self, u, thresholds, network=None):
        if self.trainable and not network:
            raise ValueError("PnP(trainable=True) needs its network tensors (from "
                             "init_parameters or a fitted estimator's regularizer_params_).")
        return self._apply(u, thresholds, network if self.trainable else None)

    def penalty(self, u, weights):
        raise NotImplementedError("PnP has no explicit penalty (plug-and-play).")

    def __getstate__(self):
        state = super().__getstate__()
        state["denoiser"] = _PickledModule(state["denoiser"])
        return state

    def __setstate__(self, state):
        denoiser = state.get("denoiser")
        if isinstance(denoiser, _PickledModule):  # a shallow copy.copy
            state = {**state, "denoiser": denoiser.module}
        super().__setstate__(state)


class _PickledModule:
    """Stands for the denoiser in a pickled PnP: pickles it on its own, to turn the
    pickler's error on an unpicklable module into one that names the problem."""

    def __init__(self, module):
        self.module = module

    def __reduce_ex__(self, protocol):
        try:
            data = pickle.dumps(self.module, protocol=protocol)
        except Exception as error:
            raise TypeError(
                f"PnP's denoiser {type(self.module).__qualname__} cannot be pickled "
                f"({type(error).__name__}: {error}). Define its class at module level (not "
                "inside a function), without lambdas or open files among its attributes; "
                "or save its state_dict and the fitted estimator's weights_ and "
                "regularizer_params_ yourself.") from error
        return pickle.loads, (data,)

    def __deepcopy__(self, memo):
        return copy.deepcopy(self.module, memo)
