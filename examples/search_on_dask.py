"""Grid search over ``K`` and ``T`` on a Dask cluster, through joblib's dask backend.

scikit-learn parallelizes ``GridSearchCV`` with joblib, and joblib can hand
its tasks to a Dask cluster: every (candidate, fold) fit then runs on a
Dask worker. Nothing in the search changes but the context it runs in::

    from dask.distributed import Client, LocalCluster
    import joblib

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster, \\
            Client(cluster):
        with joblib.parallel_backend("dask"):
            search.fit(X, y)

This example searches the number of iterations per block ``K`` and the
number of blocks ``T`` of a deblurring model (``Blur(sigma=1.0)`` on
32×32 patches with noise σ = 0.02, haar wavelet thresholds learned by
ReTune for each candidate) on a local cluster of worker processes, runs the
same search sequentially (``n_jobs=1``) and checks that both give the same
``best_params_`` and the same ``cv_results_["mean_test_score"]``: on the
CPU, with fixed ``random_state`` and ``n_threads``, a fit is bitwise
reproducible wherever it runs. It prints a markdown table of the candidates
(mean test PSNR over the folds, dask vs sequential) and writes
``search_on_dask.md`` and ``search_on_dask.png`` (a K×T heat map).

Run::

    python examples/search_on_dask.py                  # 2 local worker processes, ~35 s
    python examples/search_on_dask.py --quick          # tiny grid, for CI
    python examples/search_on_dask.py --scheduler tcp://scheduler:8786
    python examples/search_on_dask.py --n-workers 4 --device cuda

Needs ``dask`` and ``distributed`` (``pip install "dask[distributed]"``).

A real cluster
--------------
Start a scheduler and workers on the machines (``dask scheduler`` on one,
``dask worker tcp://scheduler:8786 --nworkers 4 --nthreads 1`` on each of
the others), then connect to it instead of starting a ``LocalCluster``::

    client = Client("tcp://scheduler:8786")     # or --scheduler here
    with joblib.parallel_backend("dask"):
        search.fit(X, y)

Every worker must be able to import the same versions of
``retune_sklearn``, torch and scikit-learn as the client: the estimators
travel pickled. The training data travel with the tasks (joblib's dask
backend scatters large arrays to the workers once).

Threads: give each worker one thread (``threads_per_worker=1``,
``--nthreads 1``) and set ``n_threads=1`` in the estimator, so that the
torch intra-op threads of concurrent fits do not compete for the cores
(Dask's nanny already starts workers with ``OMP_NUM_THREADS=1``). With
several threads per worker, fits run concurrently in one process, and
``n_threads`` (a process-wide torch setting) must be the same for all.

Memory allocator: Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` in its
workers, which turns off glibc's dynamic mmap threshold; torch then maps and
unmaps every tensor above 128 KiB, and the fits ran about 3 times slower on
the workers than in the client. This example sets
``MALLOC_MMAP_THRESHOLD_=33554432`` for its LocalCluster (see
``WORKER_MALLOC_CONFIG``); on a real cluster, put it in the workers' Dask
configuration (e.g. ``~/.config/dask/distributed.yaml``; a file merges with
the defaults, environment variables would be lower-cased)::

    distributed:
      nanny:
        pre-spawn-environ:
          MALLOC_MMAP_THRESHOLD_: 33554432

GPUs: give each worker exactly one GPU and set ``device="cuda"`` in the
estimator; inside a worker, ``cuda`` is then its own GPU.

* With dask-cuda (``pip install dask-cuda``), ``LocalCUDACluster()``
  starts one worker per visible GPU and sets its ``CUDA_VISIBLE_DEVICES``::

      from dask_cuda import LocalCUDACluster
      with LocalCUDACluster(threads_per_worker=1) as cluster, Client(cluster):
          with joblib.parallel_backend("dask"):
              search.fit(X, y)      # estimator with device="cuda", n_threads=1

  On other machines, ``dask cuda worker tcp://scheduler:8786`` does the same.
* Without dask-cuda, start one worker per GPU yourself, each seeing one
  device: ``CUDA_VISIBLE_DEVICES=0 dask worker tcp://scheduler:8786
  --nworkers 1 --nthreads 1``, ``CUDA_VISIBLE_DEVICES=1 dask worker ...``.

On GPUs, results agree with a sequential search only to round-off (CUDA
reductions are not bitwise reproducible; see the estimator's Notes), so
this example's equality check may then report differences in the last
digits and, rarely, another ``best_params_`` among near ties.
"""

import argparse
import logging
import os
import sys
import time

import numpy as np

BLUR_SIGMA = 1.0
NOISE_SIGMA = 0.02
WAVELET, LEVELS = "haar", 3
SEED = 0
# Dask's nanny starts its workers with MALLOC_TRIM_THRESHOLD_=65536, and setting
# that variable turns off glibc's dynamic mmap threshold: every allocation above
# 128 KiB (most of torch's intermediate tensors) is then mmap-ed and unmapped, with
# fresh page faults each time, which made the fits about 3 times slower on the
# workers than in this process. A fixed 32 MiB mmap threshold restores the speed.
WORKER_MALLOC_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 2**25}

CONFIGS = {
    "full": dict(n_train=96, patch_size=32, K=[2, 5, 10, 20], T=[1, 2, 4], cv=3,
                 max_epochs=8),
    "quick": dict(n_train=24, patch_size=32, K=[2, 5], T=[1, 2], cv=2, max_epochs=2),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny data and grid (a smoke test, < 30 s with the cluster)")
    parser.add_argument("--output", default=os.path.join("examples", "output"),
                        help="directory of search_on_dask.md and search_on_dask.png "
                             "(default: examples/output)")
    parser.add_argument("--scheduler", default=None,
                        help="address of a running Dask scheduler, e.g. tcp://scheduler:8786 "
                             "(default: start a LocalCluster)")
    parser.add_argument("--n-workers", type=int, default=2,
                        help="worker processes of the LocalCluster (default 2)")
    parser.add_argument("--device", default="cpu",
                        help="device of the estimators: cpu (default, reproducible), cuda "
                             "(one GPU per worker) or auto")
    parser.add_argument("--no-sequential", action="store_true",
                        help="skip the sequential reference search")
    args = parser.parse_args(argv)
    if args.n_workers < 1:
        parser.error(f"--n-workers must be >= 1, got {args.n_workers}")
    return args


def make_search(config, device):
    """The data and the (unfitted) grid search of this example."""
    from sklearn.model_selection import GridSearchCV, KFold

    from retune_sklearn import ReTuneRegularizer
    from retune_sklearn.datasets import make_image_problem
    from retune_sklearn.operators import Blur
    from retune_sklearn.regularizers import WaveletL1

    blur = Blur(sigma=BLUR_SIGMA)
    X, _, y, _ = make_image_problem(blur, noise_sigma=NOISE_SIGMA,
                                    patch_size=config["patch_size"],
                                    n_train=config["n_train"], n_test=1, random_state=SEED)
    estimator = ReTuneRegularizer(blur, WaveletL1(WAVELET, LEVELS), learning_rate=0.1,
                                  max_epochs=config["max_epochs"], device=device,
                                  n_threads=1, random_state=SEED)
    search = GridSearchCV(estimator, {"K": config["K"], "T": config["T"]},
                          cv=KFold(config["cv"]), n_jobs=-1)
    return search, X, y


def markdown_table(dask_results, sequential_results=None):
    """One row per candidate: K, T, mean test PSNR (dask, sequential), rank."""
    header = "| K | T | mean test PSNR, dask (dB) |"
    rule = "|---:|---:|---:|"
    if sequential_results is not None:
        header += " mean test PSNR, n_jobs=1 (dB) |"
        rule += "---:|"
    lines = [header + " rank |", rule + "---:|"]
    for i, params in enumerate(dask_results["params"]):
        line = f"| {params['K']} | {params['T']} | {dask_results['mean_test_score'][i]:.4f} |"
        if sequential_results is not None:
            line += f" {sequential_results['mean_test_score'][i]:.4f} |"
        lines.append(line + f" {dask_results['rank_test_score'][i]} |")
    return "\n".join(lines)


def run(config, args):
    """Run the searches; returns (dask search, sequential search or None)."""
    import dask
    import joblib
    import matplotlib
    from dask.distributed import Client, LocalCluster
    from sklearn.base import clone

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start_all = time.perf_counter()
    os.makedirs(args.output, exist_ok=True)
    search, X, y = make_search(config, args.device)
    n_fits = len(config["K"]) * len(config["T"]) * config["cv"]
    print(f"Deblurring (Blur σ = {BLUR_SIGMA}, noise σ = {NOISE_SIGMA}): {len(X)} patches "
          f"{X.shape[1]}×{X.shape[2]}; grid K={config['K']} × T={config['T']}, "
          f"cv={config['cv']}: {n_fits} fits\n")

    # 1. The search on the Dask cluster.
    tic = time.perf_counter()
    if args.scheduler is not None:
        cluster, client = None, Client(args.scheduler)
    else:
        with dask.config.set(WORKER_MALLOC_CONFIG):  # read when the nannies start
            cluster = LocalCluster(n_workers=args.n_workers, threads_per_worker=1,
                                   processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR)
        client = Client(cluster)
    try:
        if cluster is not None:
            client.wait_for_workers(args.n_workers, timeout=120)
        n_workers = len(client.scheduler_info()["workers"])
        started = time.perf_counter() - tic
        tic = time.perf_counter()
        with joblib.parallel_backend("dask"):
            search.fit(X, y)
        dask_seconds = time.perf_counter() - tic
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    where = args.scheduler or f"LocalCluster of {n_workers} worker processes"
    print(f"Dask ({where}, started in {started:.1f} s): search in {dask_seconds:.1f} s, "
          f"best_params_ = {search.best_params_}, best mean test PSNR "
          f"{search.best_score_:.4f} dB")

    # 2. The same search, sequentially in this process.
    sequential = None
    if not args.no_sequential:
        tic = time.perf_counter()
        sequential = clone(search).set_params(n_jobs=1).fit(X, y)
        sequential_seconds = time.perf_counter() - tic
        same_best = sequential.best_params_ == search.best_params_
        same_scores = np.array_equal(sequential.cv_results_["mean_test_score"],
                                     search.cv_results_["mean_test_score"])
        print(f"Sequential (n_jobs=1): {sequential_seconds:.1f} s, best_params_ = "
              f"{sequential.best_params_}")
        print(f"Same best_params_: {same_best}; identical mean_test_score: {same_scores}")

    table = markdown_table(search.cv_results_,
                           None if sequential is None else sequential.cv_results_)
    print()
    print(table)
    md_path = os.path.join(args.output, "search_on_dask.md")
    with open(md_path, "w", encoding="utf-8") as handle:
        handle.write(f"GridSearchCV over K and T on Dask ({where}); deblurring "
                     f"{len(X)} patches, cv={config['cv']}.\n\n")
        handle.write(table + "\n")

    # 3. Figure: mean test PSNR over the K×T grid.
    scores = np.asarray(search.cv_results_["mean_test_score"]).reshape(
        len(config["K"]), len(config["T"]))  # ParameterGrid: sorted keys, last fastest
    fig, ax = plt.subplots(figsize=(1.3 * len(config["T"]) + 2.5, 0.7 * len(config["K"]) + 1.8),
                           layout="constrained")
    image = ax.imshow(scores, cmap="viridis", aspect="auto")
    ax.set(xticks=range(len(config["T"])), xticklabels=config["T"], xlabel="T (blocks)",
           yticks=range(len(config["K"])), yticklabels=config["K"],
           ylabel="K (iterations per block)", title="Mean test PSNR (dB)")
    bright = scores > scores.min() + 0.6 * np.ptp(scores)  # black text on the light cells
    for (i, j), value in np.ndenumerate(scores):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                color="black" if bright[i, j] else "white")
    fig.colorbar(image, ax=ax)
    png_path = os.path.join(args.output, "search_on_dask.png")
    fig.savefig(png_path, dpi=90)
    plt.close(fig)

    print(f"\nWrote {png_path} and {md_path} (total {time.perf_counter() - start_all:.1f} s)")
    return search, sequential


def main(argv=None):
    args = parse_args(argv)
    config = CONFIGS["quick" if args.quick else "full"]
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        print('This example needs dask and distributed: pip install "dask[distributed]"',
              file=sys.stderr)
        return 1
    run(config, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
