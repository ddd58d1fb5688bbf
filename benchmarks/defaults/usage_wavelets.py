import warnings, time
from retune_sklearn import ReTuneRegularizer
from retune_sklearn.datasets import make_image_problem
from retune_sklearn.operators import Blur
from retune_sklearn.regularizers import WaveletL1
warnings.simplefilter("ignore")
blur = Blur(sigma=1.5, size=9)
X_train, X_test, y_train, y_test = make_image_problem(blur, noise_sigma=0.01, n_train=32, n_test=16, random_state=0)
for extra in (dict(), dict(scale_search=False), dict(solve_tol=None, solver="fb"), dict(solve_tol=None, solver="fb", scale_search=False), dict(T=100), dict(T=100, scale_search=False)):
    t=time.process_time()
    est = ReTuneRegularizer(operator=blur, regularizer=WaveletL1(wavelet="db4", levels=3, weights="subband"), K=10, T=10, max_epochs=10, batch_size=16, learning_rate=0.05, n_threads=1, random_state=0)
    est.set_params(**extra).fit(X_train, y_train)
    print(extra, round(est.score(X_test, y_test),2), "scale", est.init_scale_, "iters", est.n_solve_iter_, "res %.1e" % est.fixed_point_residual_, "cpu", round(time.process_time()-t,1), " ".join(f"{v:.4f}" for v in est.weights_), flush=True)
