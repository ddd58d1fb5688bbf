"""Per-epoch reports of a training run: a progress bar and log records."""

import logging

try:  # progress bars are optional: without tqdm, verbose=1 prints plain lines
    from tqdm.auto import tqdm
except ImportError:  # pragma: no cover - exercised by monkeypatching tqdm to None
    tqdm = None

__all__ = ["Progress"]

_LOGGER = logging.getLogger("retune_sklearn")


class Progress:
    """Per-epoch reports of a training run, by verbosity.

    ``verbose >= 1``: a tqdm bar over the epochs showing the loss (plain
    printed lines when tqdm is missing or ``bar=False``); ``verbose >= 2``:
    also an INFO record per epoch on the ``"retune_sklearn"`` logger, with
    the loss, the validation PSNR and the weights.
    """

    def __init__(self, verbose, n_epochs, weight_names, *, bar=True):
        self.verbose, self.n_epochs, self.weight_names = verbose, n_epochs, weight_names
        self.bar = (tqdm(total=n_epochs, desc="ReTuneRegularizer", unit="epoch")
                    if verbose and bar and tqdm is not None else None)

    def epoch(self, epoch, loss, validation_psnr, weights):
        if not self.verbose:
            return
        values = {"loss": f"{loss:.6g}"}
        if validation_psnr is not None:
            values["val_psnr"] = f"{validation_psnr:.4f}"
        if self.bar is not None:
            self.bar.set_postfix(values, refresh=False)
            self.bar.update()
        else:
            shown = " ".join(f"{k}={v}" for k, v in values.items())
            print(f"[ReTuneRegularizer] epoch {epoch + 1}/{self.n_epochs} {shown}", flush=True)
        if self.verbose >= 2:
            self._log(epoch, loss, validation_psnr, weights)

    def _log(self, epoch, loss, validation_psnr, weights):
        validation = "" if validation_psnr is None else f" validation_psnr={validation_psnr:.4f}"
        shown = ", ".join(f"{n}={w:.4g}" for n, w in zip(self.weight_names, weights))
        _LOGGER.info("epoch %d/%d loss=%.6g%s weights: %s", epoch + 1, self.n_epochs, loss,
                     validation, shown)

    def close(self):
        if self.bar is not None:
            self.bar.close()
