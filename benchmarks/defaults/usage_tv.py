import warnings, time
from retune_sklearn import ReTuneRegularizer
from retune_sklearn.datasets import make_image_problem
from retune_sklearn.operators import Blur
from retune_sklearn.regularizers import TotalVariation
warnings.simplefilter("ignore")
blur = Blur(sigma=1.5, size=9)
X_train, X_test, y_train, y_test = make_image_problem(blur, noise_sigma=0.01, n_train=32, n_test=16, random_state=0)
for ep in (5, 10):
  for extra in (dict(), dict(solve_tol=None, solver="fb", scale_search=False)):
    t=time.time()
    est = ReTuneRegularizer(operator=blur, regularizer=TotalVariation(n_inner=20), K=10, T=10, max_epochs=ep, batch_size=16, n_threads=1, random_state=0)
    est.set_params(**extra).fit(X_train, y_train)
    print(ep, extra, round(est.score(X_test, y_test),2), "iters", est.n_solve_iter_, "res %.1e" % est.fixed_point_residual_, "wall", round(time.time()-t,1), est.weights_, flush=True)
