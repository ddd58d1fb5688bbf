import time

import torch
from retune_sklearn import ReTuneRegularizer
from retune_sklearn.datasets import make_denoising_problem
from retune_sklearn.regularizers import WaveletL1, TotalVariation
from retune_sklearn.metrics import psnr
torch.set_num_threads(1)
Xtr, Xte, ytr, yte = make_denoising_problem(0.1, n_train=32, n_test=16, random_state=0)
print("noisy", psnr(yte, Xte))
for reg in (WaveletL1(penalize_approximation=False),
            TotalVariation(boundary="periodic", n_inner=20)):
    for ss in (False, True):
        for ep in (2, 5):
            t=time.process_time()
            est = ReTuneRegularizer(regularizer=reg, max_epochs=ep, batch_size=8, scale_search=ss, random_state=0, loss="psnr").fit(Xtr, ytr)
            print(type(reg).__name__, "search" if ss else "plain", ep, round(est.score(Xte, yte),2), "scale", est.init_scale_, "cpu", round(time.process_time()-t,1), est.n_solve_iter_, est.training_solve_iter_)
