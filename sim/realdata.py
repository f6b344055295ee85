"""The real-data bridge: the stylized world's pipeline on a real dataset that ships with
the install (``world.data``), so that a conclusion can be checked on data that are not
Gaussian cells.

The dataset is scikit-learn's bundled handwritten digits (UCI optdigits, 1,797 8x8
images; nothing is downloaded). Each image is a draw of a (label, group) cell:

* **label** y = +1 for the digits 5-9, -1 for 0-4;
* **group** a = 1 (the minority) for the heaviest-ink 30% of each digit's images (a
  writing style: thick strokes), a = 0 for the rest, so P(a = 1 | digit) = 0.3 for every
  digit and the label and the group are independent in the data; the scenario's prior
  pi(y, a) (``world.group_shares``, ``world.spurious_r``, the shift families) decides how
  often each cell is drawn.

**Splits.** The images are split once (a fixed permutation, stratified by cell) into
thirds: the *public* split, on which the feature map is fitted and the FM is pretrained
(with the probe-refusal term, as in the stylized world); the *private-train* split, from
which the clients' training samples are drawn; and the *private-test* split, from which
every held-out evaluation is drawn (the clients' metrics, the auditor's P0 and panel
draws).

**Features.** The 64 pixels standardized on the public split and projected on its first
d - 1 principal components, each scaled to unit variance on the public split; the
coordinate ``ALIGN_AXIS`` is the alignment direction u, on which every task image is 0
and along which the probe distribution N(probe_strength u, probe_std^2 I) lies (the
safety features are silent on benign task data; the probe world stays stylized: a
digits dataset has no harmful requests).

**The shift families act as in the stylized world**, on the cells' priors and means: a
client's draw of cell (y, a) is

    x = mu_c(y, a) + sqrt(s_c) (x_img - mu_0(y, a)),

x_img a uniformly drawn image of the cell (with replacement), mu_0 the public split's
cell means (the world's ``mu``) and (pi_c, mu_c, s_c) the client's distribution
(label Dirichlet and attribute imbalance move pi_c; covariate and concept shifts move
mu_c; the covariance spread scales s_c). An unshifted client draws the images
themselves. ``e_core`` and ``e_spu`` are the unit directions of the public split's
label and group mean differences (``e_spu`` orthogonal to ``e_core``): the concept
shift's rotation and the spurious-weight metric read them.

What the Monte Carlo standard errors cover: the replicates resample the private-test
split, so the SE is the Monte Carlo error about that split's empirical cell
distributions; the split's own sampling error (about 80-200 images per cell) is not in
it.

References:
    Alpaydin & Kaynak (1998), Optical Recognition of Handwritten Digits, UCI Machine
    Learning Repository, doi:10.24432/C50P49.  Pedregosa et al. (2011), Scikit-learn:
    Machine Learning in Python, JMLR 12, 2825-2830.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

#: The datasets ``world.data`` names besides the stylized ``"gaussian"`` cells.
DATASETS = ("digits",)
#: The splits, in the order of :attr:`RealData.rows`.
SPLITS = ("public", "train", "test")
#: Share of each digit's images in the minority (heavy-ink) group.
MINORITY_SHARE = 0.3
#: The fixed permutation of the split (the dataset, not the run, decides it).
SPLIT_SEED = 20261207


class RealData(NamedTuple):
    """The dataset's images as cell pools (a PyTree of constant arrays)."""

    rows: Array  # (3, 2, G, n_max, d) features of each split's cell images, zero-padded
    count: Array  # (3, 2, G) images per cell and split


@functools.lru_cache(maxsize=1)
def digit_cells() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The digits with their cells and splits (module docstring).

    Returns:
        (pixels (n, 64), digit (n,), y index (n,) (1: y = +1), a (n,), split (n,) indices
        into :data:`SPLITS`).
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    pixels, digit = data.data.astype(np.float64), data.target
    y = (digit >= 5).astype(int)  # cell index 1: y = +1
    ink = pixels.sum(1)
    a = np.zeros(len(digit), int)
    for k in range(10):  # the heaviest-ink MINORITY_SHARE of each digit
        idx = np.flatnonzero(digit == k)
        a[idx[np.argsort(-ink[idx], kind="stable")[: round(MINORITY_SHARE * idx.size)]]] = 1
    rng = np.random.default_rng(SPLIT_SEED)
    split = np.empty(len(digit), int)
    for cell in range(4):  # stratified thirds per (y, a) cell
        idx = rng.permutation(np.flatnonzero(2 * y + a == cell))
        split[idx] = np.arange(idx.size) % 3
    return pixels, digit, y, a, split


def features(pixels: np.ndarray, split: np.ndarray, d: int, align_axis: int) -> np.ndarray:
    """The d features of images: the pixels standardized on the public split, projected on
    its first d - 1 principal components scaled to unit variance there, and a 0 inserted
    at the alignment coordinate.

    Args:
        pixels: (n, p) images.
        split: (n,) split indices (0: public).
        d: the feature dimension.
        align_axis: the alignment coordinate.

    Returns:
        (n, d) features.
    """
    public = pixels[split == 0]
    mean, std = public.mean(0), public.std(0)
    std[std == 0] = 1.0
    z = (pixels - mean) / std
    _, _, vt = np.linalg.svd(z[split == 0] - z[split == 0].mean(0), full_matrices=False)
    comps = z @ vt[: d - 1].T
    comps /= comps[split == 0].std(0)
    return np.insert(comps, align_axis, 0.0, axis=1)


@functools.lru_cache(maxsize=8)
def _digits(d: int, align_axis: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """The digits as cell pools in d features (module docstring), with the public split's
    statistics; cached per (d, align axis)."""
    pixels, _, y, a, split = digit_cells()
    feats = features(pixels, split, d, align_axis)
    G = 2
    count = np.array(
        [[[np.sum((split == s) & (y == yi) & (a == ai)) for ai in range(G)] for yi in range(2)] for s in range(3)]
    )
    rows = np.zeros((3, 2, G, count.max(), d), np.float32)
    for s in range(3):
        for yi in range(2):
            for ai in range(G):
                sel = feats[(split == s) & (y == yi) & (a == ai)]
                rows[s, yi, ai, : len(sel)] = sel
    pub = rows[0]
    mu = np.stack([[pub[yi, ai, : count[0, yi, ai]].mean(0) for ai in range(G)] for yi in range(2)])  # (2, G, d)
    cov = np.stack(
        [
            sum(np.cov(pub[yi, ai, : count[0, yi, ai]].T, bias=True) * count[0, yi, ai] for yi in range(2))
            / count[0, :, ai].sum()
            for ai in range(G)
        ]
    )
    core = (mu[1] - mu[0]).mean(0)
    e_core = core / np.linalg.norm(core)
    spu = (mu[:, 0] - mu[:, 1]).mean(0)
    spu -= (spu @ e_core) * e_core
    e_spu = spu / np.linalg.norm(spu)
    stats = dict(mu=mu, Sigma=cov, e_core=e_core, e_spu=e_spu)
    return rows, count, stats


def dataset_dims(name: str) -> int:
    """The largest d a dataset supports: its feature count plus the alignment coordinate.

    Args:
        name: a name in :data:`DATASETS`.

    Returns:
        The largest ``world.d``.
    """
    return {"digits": 64 + 1}[name]


def load(name: str, d: int, align_axis: int) -> tuple[RealData, dict]:
    """The dataset ``name`` in d features as cell pools, and the public split's statistics.

    Args:
        name: a name in :data:`DATASETS`.
        d: the feature dimension (``world.d``).
        align_axis: the coordinate of the alignment direction.

    Returns:
        (RealData, {mu (2, G, d), Sigma (G, d, d), e_core (d,), e_spu (d,)}) as float32.
    """
    if name not in DATASETS:
        raise ValueError(f"world.data: unknown dataset {name!r}; available: gaussian, {', '.join(DATASETS)}")
    rows, count, stats = _digits(d, align_axis)
    return RealData(jnp.asarray(rows), jnp.asarray(count, jnp.int32)), {
        k: jnp.asarray(v, jnp.float32) for k, v in stats.items()
    }


def _images(data: RealData, split: str, key: Array, yi: Array, ai: Array) -> Array:
    """Uniform draws, with replacement, of images of cells (yi, ai) from ``split``."""
    s = SPLITS.index(split)
    count = data.count[s][yi, ai]
    idx = jnp.minimum(jnp.floor(jax.random.uniform(key, yi.shape) * count).astype(jnp.int32), count - 1)
    return data.rows[s][yi, ai, idx]


def shifted_images(x: Array, mu_c: Array, scale: Array, mu0: Array) -> Array:
    """A client's version of images of its cells: x -> mu_c + sqrt(s) (x - mu_0), computed
    as x + (mu_c - mu_0) + (sqrt(s) - 1) (x - mu_0) so that an unshifted client's draws
    are the images bit for bit.

    Args:
        x: (..., d) images' features.
        mu_c: (..., d) the client's means of their cells.
        scale: () the client's covariance scale s_c.
        mu0: (..., d) the public split's means of their cells.

    Returns:
        (..., d).
    """
    return x + (mu_c - mu0) + (jnp.sqrt(scale) - 1.0) * (x - mu0)


def sample_cells(key: Array, data: RealData, split: str, pi: Array, mu: Array, scale: Array, mu0: Array, n: int):
    """n draws (x, cell) of a client's distribution: the cell from the prior, then an image of it.

    Args:
        key: a JAX PRNG key.
        data: the cell pools.
        split: ``"public"`` (the FM's pretraining) or ``"train"`` (the clients' samples).
        pi: (2, G) the prior.
        mu: (2, G, d) the client's cell means.
        scale: () the covariance scale.
        mu0: (2, G, d) the public split's cell means.
        n: the draws.

    Returns:
        (x (n, d), y index (n,), a index (n,)).
    """
    G = pi.shape[1]
    k1, k2 = jax.random.split(key)
    cell = jax.random.categorical(k1, jnp.log(jnp.maximum(pi.reshape(-1), 1e-30)), shape=(n,))
    yi, ai = cell // G, cell % G
    x = _images(data, split, k2, yi, ai)
    return shifted_images(x, mu[yi, ai], scale, mu0[yi, ai]), yi, ai


def stratified_cells(key: Array, data: RealData, mu: Array, scale: Array, mu0: Array, shape: tuple[int, int]) -> Array:
    """Held-out draws of every (label, group) cell from the private-test split, ``shape`` =
    (R, n) per cell (the real counterpart of ``mlp.cell_draws``).

    Args:
        key: a JAX PRNG key.
        data: the cell pools.
        mu: (2, G, d) the client's cell means.
        scale: () its covariance scale.
        mu0: (2, G, d) the public split's cell means.
        shape: (R, n).

    Returns:
        (R, 2, G, n, d) draws.
    """
    R, n = shape
    G = mu.shape[1]
    yi = jnp.broadcast_to(jnp.arange(2)[None, :, None, None], (R, 2, G, n))
    ai = jnp.broadcast_to(jnp.arange(G)[None, None, :, None], (R, 2, G, n))
    x = _images(data, "test", key, yi, ai)
    return shifted_images(x, mu[yi, ai], scale, mu0[yi, ai])
