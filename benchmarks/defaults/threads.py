import time, warnings
import torch
from retune_sklearn import ReTuneRegularizer
from retune_sklearn.datasets import make_image_problem
from retune_sklearn.operators import Blur
from retune_sklearn.regularizers import WaveletL1
warnings.simplefilter("ignore")
blur = Blur(sigma=1.5, size=9)
Xtr, Xte, ytr, yte = make_image_problem(blur, noise_sigma=0.01, n_train=32, n_test=16, random_state=0)
print("torch default threads", torch.get_num_threads())
for rep in range(2):
    for nt in (1, None):
        t = time.time(); c = time.process_time()
        ReTuneRegularizer(blur, WaveletL1(), max_epochs=2, batch_size=16, n_threads=nt, random_state=0, scale_search=False).fit(Xtr, ytr)
        print("n_threads", nt, "wall %.1f s, CPU %.1f s" % (time.time() - t, time.process_time() - c), flush=True)
