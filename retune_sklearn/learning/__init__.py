"""Learning the parameters θ: their tensors, the losses, the data batches and the epoch loop.

* :mod:`.parameters`: θ (log-weights, step logit, network) and Adam's state;
* :mod:`.losses`: the training losses by name (:data:`LOSSES`);
* :mod:`.data`: measurement batches and splits;
* :mod:`.warm_start`: the per-sample iterates kept across epochs;
* :mod:`.loop`: the Adam epochs with divergence, interruption and early stopping;
* :mod:`.progress`: progress bars and logging.

Nothing here reads the estimator: the estimator passes a loss function,
a validation function and :class:`~.loop.LoopOptions`.
"""
