"""Out-of-core training: ``partial_fit`` on mini-batches read from ``numpy.memmap`` files.

When the training pairs do not fit in memory, keep them on disk and stream
them. This example

1. writes a denoising data set (grayscale patches cut by
   :func:`retune_sklearn.datasets.load_image_patches` from the training
   photos, plus Gaussian noise of σ = 0.1) chunk by chunk into two
   ``numpy.memmap`` files, ``X.float32`` (noisy) and ``y.float32`` (clean),
   so that at most one chunk is ever held in memory;
2. reopens them read-only (``mode="r"``) and trains a
   :class:`~retune_sklearn.ReTuneRegularizer` (per-subband db4 wavelet
   thresholds) with :meth:`~retune_sklearn.ReTuneRegularizer.partial_fit`:
   each pass visits the chunks in a new random order, and every
   ``partial_fit`` call runs Adam steps over one chunk in mini-batches of
   ``batch_size`` (the Adam state carries over between calls);
3. prints, after each pass, the mean training loss of the pass and the
   mean PSNR on held-out test patches (cut from the *test* photos).

Only one chunk of the memmaps (``--chunk`` pairs, copied by ``partial_fit``
because the maps are read-only) and the small test set are in memory at a
time; the same loop works unchanged for files of any size. The page cache
keeps recently read parts of the files, but the operating system evicts
them under memory pressure.

It prints a markdown table (one row per pass) and writes
``streaming_memmap.md`` and ``streaming_memmap.png`` (test PSNR and
training loss per pass) to the output directory. The memmap files go to a
temporary directory that is deleted at the end, unless ``--data-dir`` is
given.

Run::

    python examples/streaming_memmap.py               # full example, ~25 s on 2 cores
    python examples/streaming_memmap.py --quick       # tiny sizes, for CI
    python examples/streaming_memmap.py --output DIR  # default examples/output
    python examples/streaming_memmap.py --data-dir D  # keep the memmaps in D
    python examples/streaming_memmap.py --threads 0   # torch's default thread count
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

SIGMA = 0.1
WAVELET, LEVELS = "db4", 3
K, T = 5, 2  # identity operator + orthonormal wavelet: one step is exact
SEED = 0
DTYPE = np.float32  # on disk; float32 halves the files and is what torch computes in

CONFIGS = {
    # n_train pairs on disk, written and streamed in chunks of `chunk`.
    "full": dict(n_train=2048, n_test=128, patch_size=64, chunk=512, n_passes=4,
                 batch_size=32, learning_rate=0.05),
    "quick": dict(n_train=256, n_test=32, patch_size=64, chunk=64, n_passes=2,
                  batch_size=32, learning_rate=0.1),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes (a smoke test, < 20 s)")
    parser.add_argument("--output", default=os.path.join("examples", "output"),
                        help="directory of streaming_memmap.png and streaming_memmap.md "
                             "(default: examples/output)")
    parser.add_argument("--data-dir", default=None,
                        help="directory for the memmap files, kept afterwards (default: a "
                             "temporary directory, deleted at the end)")
    parser.add_argument("--chunk", type=int, default=None,
                        help="pairs read per partial_fit call (default: 512, quick: 64)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1; 0 keeps torch's default)")
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error(f"--threads must be >= 0, got {args.threads}")
    if args.chunk is not None and args.chunk < 1:
        parser.error(f"--chunk must be >= 1, got {args.chunk}")
    return args


def markdown_table(rows):
    """Rows of (pass, samples seen, mean training loss, test PSNR, seconds) as markdown."""
    lines = ["| pass | pairs seen | mean training loss | test PSNR (dB) | wall time (s) |",
             "|---:|---:|---:|---:|---:|"]
    for n_pass, seen, loss, value, seconds in rows:
        lines.append(f"| {n_pass} | {seen} | {loss:.4f} | {value:.2f} | {seconds:.2f} |")
    return "\n".join(lines)


def write_memmaps(data_dir, n_pairs, patch_size, chunk, random_state):
    """Write noisy/clean patch pairs, chunk by chunk, to two float32 memmap files.

    Returns the paths of ``X`` (noisy) and ``y`` (clean) and the shape of the arrays.
    """
    from retune_sklearn.datasets import load_image_patches

    shape = (n_pairs, patch_size, patch_size)
    paths = os.path.join(data_dir, "X.float32"), os.path.join(data_dir, "y.float32")
    X_map = np.memmap(paths[0], dtype=DTYPE, mode="w+", shape=shape)
    y_map = np.memmap(paths[1], dtype=DTYPE, mode="w+", shape=shape)
    # One independent seed per chunk: patch positions, then noise.
    seeds = np.random.SeedSequence(random_state).spawn(2 * ((n_pairs + chunk - 1) // chunk))
    for i, start in enumerate(range(0, n_pairs, chunk)):
        stop = min(start + chunk, n_pairs)
        clean = load_image_patches("train", patch_size, stop - start,
                                   random_state=np.random.default_rng(seeds[2 * i]))
        noise = SIGMA * np.random.default_rng(seeds[2 * i + 1]).standard_normal(clean.shape)
        y_map[start:stop] = clean
        X_map[start:stop] = clean + noise
    for array in (X_map, y_map):
        array.flush()
    del X_map, y_map  # closes the maps
    return paths, shape


def run(config, output, data_dir):
    """Write the memmaps to ``data_dir``, train on them; returns the table rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from retune_sklearn import ReTuneRegularizer
    from retune_sklearn.datasets import load_image_patches
    from retune_sklearn.metrics import psnr
    from retune_sklearn.regularizers import WaveletL1

    start_all = time.perf_counter()
    os.makedirs(output, exist_ok=True)
    chunk, patch = config["chunk"], config["patch_size"]

    # 1. The data set on disk, written chunk by chunk.
    tic = time.perf_counter()
    (X_path, y_path), shape = write_memmaps(data_dir, config["n_train"], patch, chunk, SEED)
    size_mb = 2 * os.path.getsize(X_path) / 2**20
    print(f"Wrote {shape[0]} noisy/clean pairs of {patch}×{patch} (σ = {SIGMA}) to "
          f"{X_path} and {y_path}: {size_mb:.1f} MiB in all, in chunks of {chunk} "
          f"({time.perf_counter() - tic:.1f} s)")

    # A small held-out test set from other photos, in memory.
    y_test = load_image_patches("test", patch, config["n_test"], random_state=SEED + 1)
    X_test = (y_test + SIGMA * np.random.default_rng(SEED + 2).standard_normal(y_test.shape)
              ).astype(DTYPE)
    noisy_psnr = psnr(y_test, X_test)
    print(f"Held-out test set: {len(X_test)} patches from the test photos; noisy input "
          f"PSNR {noisy_psnr:.2f} dB\n")

    # 2. Streamed training: read-only maps, one partial_fit per chunk.
    X_map = np.memmap(X_path, dtype=DTYPE, mode="r", shape=shape)
    y_map = np.memmap(y_path, dtype=DTYPE, mode="r", shape=shape)
    retune = ReTuneRegularizer(
        regularizer=WaveletL1(WAVELET, LEVELS, penalize_approximation=False), K=K, T=T,
        loss="psnr", learning_rate=config["learning_rate"], batch_size=config["batch_size"],
        random_state=SEED)
    rng = np.random.default_rng(SEED)
    starts = np.arange(0, shape[0], chunk)
    rows, seen = [], 0
    for n_pass in range(1, config["n_passes"] + 1):
        tic = time.perf_counter()
        losses, sizes = [], []
        for start in rng.permutation(starts):  # a new chunk order every pass
            X_chunk, y_chunk = X_map[start:start + chunk], y_map[start:start + chunk]
            retune.partial_fit(X_chunk, y_chunk)
            losses.append(retune.loss_curve_[-1])
            sizes.append(len(X_chunk))
            seen += len(X_chunk)
        test_psnr = retune.score(X_test, y_test)
        rows.append((n_pass, seen, float(np.average(losses, weights=sizes)), test_psnr,
                     time.perf_counter() - tic))
        print(f"pass {n_pass}/{config['n_passes']}: {len(starts)} partial_fit calls, "
              f"mean training loss {rows[-1][2]:.4f}, test PSNR {test_psnr:.2f} dB "
              f"({rows[-1][4]:.1f} s)", flush=True)
    del X_map, y_map

    table = markdown_table(rows)
    print()
    print(table)
    print(f"\nNoisy input: {noisy_psnr:.2f} dB. Training loss: mean over the pass of "
          "10·log10 MSE per patch (loss='psnr'); wall time: the pass and the test "
          "PSNR.")
    print("Learned thresholds: " + "  ".join(
        f"{name}={value:.4g}" for name, value in zip(retune.weight_names_, retune.weights_)))

    md_path = os.path.join(output, "streaming_memmap.md")
    with open(md_path, "w", encoding="utf-8") as handle:
        handle.write(f"partial_fit over memmaps: {shape[0]} pairs {patch}×{patch}, σ = "
                     f"{SIGMA}, chunks of {chunk}; noisy test input {noisy_psnr:.2f} dB.\n\n")
        handle.write(table + "\n")

    # 3. Figure: test PSNR and training loss per pass.
    fig, (ax_psnr, ax_loss) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    passes = [row[0] for row in rows]
    ax_psnr.plot(passes, [row[3] for row in rows], "o-", label="ReTune (partial_fit)")
    ax_psnr.axhline(noisy_psnr, color="gray", linestyle="--", label="noisy input")
    ax_psnr.set(xlabel="pass over the memmaps", ylabel="test PSNR (dB)",
                title="Held-out test PSNR", xticks=passes)
    ax_psnr.legend()
    ax_loss.plot(np.arange(1, len(retune.loss_curve_) + 1) / len(starts), retune.loss_curve_)
    ax_loss.set(xlabel="pass (one point per partial_fit call)",
                ylabel="training loss (10·log10 MSE)", title="Training loss per chunk")
    png_path = os.path.join(output, "streaming_memmap.png")
    fig.savefig(png_path, dpi=90)
    plt.close(fig)

    print(f"\nWrote {png_path} and {md_path} (total {time.perf_counter() - start_all:.1f} s)")
    return rows


def main(argv=None):
    args = parse_args(argv)
    config = dict(CONFIGS["quick" if args.quick else "full"])
    if args.chunk is not None:
        config["chunk"] = args.chunk

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data_dir is not None:
        os.makedirs(args.data_dir, exist_ok=True)
        run(config, args.output, args.data_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="retune_memmap_") as data_dir:
            run(config, args.output, data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
