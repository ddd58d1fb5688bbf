"""How K (iterations per block) and T (blocks) trade accuracy for time.

Fits ``ReTuneRegularizer(regularizer="wavelet")`` on a small deblurring
problem (Gaussian blur σ = 1.5, noise 0.01, 64×64 scikit-image patches, train
and test from different photos) for every (K, T) of a grid, with the same number of epochs,
and draws two heat maps: test PSNR and fit time. Every solve (training and
``transform``) runs T·K forward–backward iterations; only the last K are
differentiated (``hypergradient="jfb"``).

Run::

    python examples/k_and_t.py                 # writes examples/output/k_and_t.png
    python examples/k_and_t.py --quick         # a smaller grid, for CI
    python examples/k_and_t.py --output docs   # the figure of the README
    python examples/k_and_t.py --threads 0     # torch's default thread count

By default every fit runs on one torch thread (``n_threads=1``): the solves
are many small operations on 64×64 patches, and on a busy machine several
OpenMP threads can be many times slower than one.
"""

import argparse
import os
import sys
import time

import numpy as np

GRIDS = {"full": dict(K=[1, 5, 10, 20], T=[1, 2, 5, 10], n_train=32, n_test=16, epochs=6),
         "quick": dict(K=[1, 5], T=[1, 2], n_train=8, n_test=4, epochs=1)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 2×2 grid on tiny data")
    parser.add_argument("--output", default=os.path.join("examples", "output"),
                        help="directory of k_and_t.png (default: examples/output)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1; 0 keeps torch's default)")
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error(f"--threads must be >= 0, got {args.threads}")
    return args


def measure(grid, threads=1):
    """Test PSNR and fit time (s) of each (K, T), as two (len(K), len(T)) arrays.

    ``threads`` is the estimators' ``n_threads`` (0: torch's default).
    """
    from retune_sklearn import ReTuneRegularizer
    from retune_sklearn.datasets import make_image_problem
    from retune_sklearn.operators import Blur

    operator = Blur(sigma=1.5)
    X_train, X_test, y_train, y_test = make_image_problem(
        operator, noise_sigma=0.01, n_train=grid["n_train"], n_test=grid["n_test"],
        random_state=0)
    # One untimed fit first: the first one pays for torch's lazy initialization.
    n_threads = threads or None
    # The wavelet model (db4, per-subband weights; docs/k_and_t.png): a 16-cell grid of
    # the default TotalVariation would take several times longer.
    model = dict(operator=operator, regularizer="wavelet", n_threads=n_threads)
    ReTuneRegularizer(**model, K=1, T=1, max_epochs=1).fit(X_train[:2], y_train[:2])
    scores = np.zeros((len(grid["K"]), len(grid["T"])))
    seconds = np.zeros_like(scores)
    for i, K in enumerate(grid["K"]):
        for j, T in enumerate(grid["T"]):
            tic = time.perf_counter()
            est = ReTuneRegularizer(**model, K=K, T=T, max_epochs=grid["epochs"],
                                    batch_size=16, learning_rate=0.1, loss="psnr",
                                    random_state=0).fit(X_train, y_train)
            seconds[i, j] = time.perf_counter() - tic
            scores[i, j] = est.score(X_test, y_test)
            print(f"K={K:3d} T={T:3d}: test PSNR {scores[i, j]:.2f} dB, fit {seconds[i, j]:.1f} s, "
                  f"fixed-point residual {est.fixed_point_residual_:.1e}")
    return scores, seconds


def plot(grid, scores, seconds, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for ax, values, title, fmt in ((axes[0], scores, "test PSNR (dB)", "{:.2f}"),
                                   (axes[1], seconds, "fit time (s)", "{:.1f}")):
        image = ax.imshow(values, cmap="viridis", origin="lower")
        ax.set_xticks(range(len(grid["T"])), grid["T"])
        ax.set_yticks(range(len(grid["K"])), grid["K"])
        ax.set_xlabel("T (blocks)")
        ax.set_ylabel("K (iterations per block, differentiated)")
        ax.set_title(title)
        for (i, j), value in np.ndenumerate(values):
            ax.text(j, i, fmt.format(value), ha="center", va="center", color="white")
        fig.colorbar(image, ax=ax)
    fig.suptitle("Deblurring (Gaussian σ = 1.5, noise 0.01): every solve runs T·K iterations")
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    grid = GRIDS["quick" if args.quick else "full"]
    os.makedirs(args.output, exist_ok=True)
    scores, seconds = measure(grid, args.threads)
    path = os.path.join(args.output, "k_and_t.png")
    plot(grid, scores, seconds, path)
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
