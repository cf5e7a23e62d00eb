"""ACIS pseudo-masks (anatosynth_components.acis.pseudomask): exactness against brute force, statistics of
the sampling, determinism and bad input. Transforms and the command line: test_pseudomask_cli.py."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest
from scipy import stats
from skimage.feature import canny

from anatosynth_components.acis.pseudomask import (
    canny_edges,
    edge_density,
    kde_direct,
    nearest_seed,
    pseudo_mask,
    sample_without_replacement,
    sampling_weights,
    voronoi_cells,
    voronoi_fill,
)
from anatosynth_components.acis.pseudomask.density import select_edge_points
from anatosynth_components.errors import ConfigError, DataError


def brute_force_d2(shape: tuple[int, ...], seeds: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """(voxels, N) squared physical distance from every voxel to every seed."""
    grid = np.stack(np.unravel_index(np.arange(int(np.prod(shape))), shape), axis=1)
    return (((grid[:, None, :] - seeds[None, :, :]) * spacing) ** 2).sum(-1)


def random_case(rng: np.random.Generator, ndim: int, spacing_kind: str):
    shape = tuple(int(n) for n in rng.integers(2, 10, ndim))
    size = int(np.prod(shape))
    num = int(rng.integers(1, min(size, 25) + 1))
    flat = rng.choice(size, num, replace=False)
    seeds = np.stack(np.unravel_index(flat, shape), axis=1)
    if spacing_kind == "isotropic":
        spacing = np.full(ndim, 1.0)
    elif spacing_kind == "binary":  # exact binary fractions: ties are exact, the rule is checked
        spacing = rng.choice([0.5, 1.0, 1.5, 2.0, 2.5, 3.0], ndim)
    else:
        spacing = rng.uniform(0.3, 4.0, ndim)
    return shape, seeds, flat, spacing


# --- Voronoi (Eq. 2) ------------------------------------------------------------------------------


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("spacing_kind", ["isotropic", "binary", "anisotropic"])
def test_voronoi_is_exact_nearest_seed(ndim, spacing_kind):
    rng = np.random.default_rng(100 * ndim + len(spacing_kind))
    ties_seen = 0
    for _ in range(40):
        shape, seeds, flat, spacing = random_case(rng, ndim, spacing_kind)
        cells, dist2 = nearest_seed(shape, seeds, spacing)
        d2 = brute_force_d2(shape, seeds, spacing)
        best = d2.min(axis=1)
        chosen = d2[np.arange(len(best)), cells.ravel()]
        np.testing.assert_allclose(chosen, best, rtol=1e-12, atol=1e-12)  # only seeds at the minimum
        np.testing.assert_allclose(dist2.ravel(), best, rtol=1e-12, atol=1e-12)
        if spacing_kind != "anisotropic":  # documented rule: smallest C-order index among ties
            tied = d2 == best[:, None]
            ties_seen += int(np.count_nonzero(tied.sum(1) > 1))
            expected = np.where(tied, flat[None, :], np.iinfo(np.int64).max).min(axis=1)
            np.testing.assert_array_equal(flat[cells.ravel()], expected)
    if spacing_kind != "anisotropic":
        assert ties_seen > 20  # the cases really exercise the tie rule


def expected_cells(shape, seeds, flat, spacing):
    """Brute force: (voxels,) squared distance to the nearest seed and that seed's number, ties to
    the smallest C-order index (the documented rule)."""
    d2 = brute_force_d2(shape, seeds, spacing)
    best = d2.min(axis=1)
    tied = d2 == best[:, None]
    winner = np.where(tied, flat[None, :], np.iinfo(np.int64).max).min(axis=1)
    lookup = {int(f): k for k, f in enumerate(flat)}
    return best, np.array([lookup[int(f)] for f in winner]), int(np.count_nonzero(tied.sum(1) > 1))


def larger_case(rng: np.random.Generator, ndim: int, spacing_kind: str):
    """Up to 24^ndim voxels and up to 300 seeds: long stacks, deep pops, planes and rows without
    seeds, and (with exact spacings) many ties."""
    shape = tuple(int(n) for n in rng.integers(1, 25 if ndim == 2 else 14, ndim))
    size = int(np.prod(shape))
    num = int(rng.integers(1, min(size, 300) + 1))
    flat = rng.choice(size, num, replace=False)
    seeds = np.stack(np.unravel_index(flat, shape), axis=1)
    spacing = {
        "isotropic": np.ones(ndim),
        "binary": rng.choice([0.5, 1.0, 1.5, 2.0, 2.5, 3.0], ndim),
        "anisotropic": rng.uniform(0.3, 4.0, ndim),
    }[spacing_kind]
    return shape, seeds, flat, spacing


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("spacing_kind", ["isotropic", "binary", "anisotropic"])
def test_cell_map_path_is_exact_nearest_seed(ndim, spacing_kind):
    """voronoi_cells / voronoi_fill write the cell map straight from the stacks (no distances), a
    different output path from nearest_seed's: both against brute force, ties included."""
    rng = np.random.default_rng(500 + 10 * ndim + len(spacing_kind))
    ties_seen = 0
    for trial in range(60):
        case = random_case if trial % 2 else larger_case
        shape, seeds, flat, spacing = case(rng, ndim, spacing_kind)
        best, winner, ties = expected_cells(shape, seeds, flat, spacing)
        cells = voronoi_cells(shape, seeds, spacing)
        assert cells.shape == shape and cells.dtype == np.int32
        cells_d, dist2 = nearest_seed(shape, seeds, spacing)
        chosen = brute_force_d2(shape, seeds, spacing)[np.arange(best.size), cells.ravel()]
        np.testing.assert_allclose(chosen, best, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dist2.ravel(), best, rtol=1e-12, atol=1e-12)
        if spacing_kind != "anisotropic":
            ties_seen += ties
            np.testing.assert_array_equal(cells.ravel(), winner)
            np.testing.assert_array_equal(cells_d.ravel(), winner)
    if spacing_kind != "anisotropic":
        assert ties_seen > 200


@pytest.mark.parametrize("ndim", [2, 3])
def test_voronoi_tie_rule_on_lattices(ndim):
    """Seeds on regular lattices put many voxels at equal distance from 2, 4 or 8 seeds; the
    smallest C-order index must win every one of those ties, on both output paths."""
    rng = np.random.default_rng(ndim)
    lattices = [(2, 1.0), (4, (1.0, 2.0, 0.5)[:ndim]), (2, (1.0, 0.5, 1.0)[:ndim]), (4, 1.0), (3, 0.5)]
    total = 0
    for step, spacing in lattices:
        shape = (13, 11, 9)[:ndim]
        grid = np.stack(np.meshgrid(*[np.arange(0, n, step) for n in shape], indexing="ij"), -1)
        seeds = grid.reshape(-1, ndim)
        keep = rng.random(len(seeds)) < 0.8  # holes: ties between farther seeds too
        seeds = seeds[keep][rng.permutation(int(keep.sum()))]
        flat = np.ravel_multi_index(tuple(seeds.T), shape)
        spacing = np.broadcast_to(np.asarray(spacing, dtype=float), (ndim,))
        best, winner, ties = expected_cells(shape, seeds, flat, spacing)
        total += ties
        np.testing.assert_array_equal(voronoi_cells(shape, seeds, spacing).ravel(), winner)
        cells, dist2 = nearest_seed(shape, seeds, spacing)
        np.testing.assert_array_equal(cells.ravel(), winner)
        np.testing.assert_allclose(dist2.ravel(), best, rtol=1e-12, atol=1e-12)
    assert total > 200


@pytest.mark.parametrize(
    ("shape", "seeds"),
    [
        ((1, 1, 1), [[0, 0, 0]]),
        ((5, 1, 4), [[4, 0, 3], [0, 0, 0]]),
        ((1, 6, 5), [[0, 5, 4]]),
        ((6, 5, 1), [[5, 0, 0], [0, 4, 0], [3, 2, 0]]),
        ((7, 6, 5), [[6, 5, 4]]),  # one seed in the last plane, row and column
        ((9, 4, 4), [[0, 0, 0], [8, 3, 3]]),  # planes 1..7 hold no seed
        ((4, 3), [[3, 2]]),
        ((2, 2, 2), [[i, j, k] for i in range(2) for j in range(2) for k in range(2)]),  # all voxels
    ],
)
def test_voronoi_edge_cases(shape, seeds):
    seeds = np.array(seeds)
    flat = np.ravel_multi_index(tuple(seeds.T), shape)
    for spacing in (np.ones(len(shape)), np.linspace(0.5, 2.0, len(shape))):
        best, winner, _ = expected_cells(shape, seeds, flat, spacing)
        np.testing.assert_array_equal(voronoi_cells(shape, seeds, spacing).ravel(), winner)
        cells, dist2 = nearest_seed(shape, seeds, spacing)
        np.testing.assert_array_equal(cells.ravel(), winner)
        np.testing.assert_allclose(dist2.ravel(), best, rtol=1e-12, atol=1e-12)


def test_integer_envelopes_of_grouped_lines_against_brute_force():
    """The envelope module on its own: groups of lines with different numbers of candidates and
    positions (the middle pass), small integer values and weights so that crossings often fall on
    integers; the winner is the smallest position among the minimisers."""
    from anatosynth_components.acis.pseudomask.envelope import (
        Candidates,
        build_stacks,
        emit_labels,
        walk_queries,
    )

    rng = np.random.default_rng(4)
    for trial in range(40):
        n, groups, per_group = int(rng.integers(1, 30)), int(rng.integers(1, 6)), int(rng.integers(1, 7))
        weight = float(rng.choice([0.25, 1.0, 2.0, 3.0]))
        counts = np.sort(rng.integers(1, n + 1, groups))[::-1]
        depth = int(counts[0])
        positions = np.zeros((depth, groups))
        for g, c in enumerate(counts):
            positions[:c, g] = np.sort(rng.choice(n, c, replace=False))
        lines = groups * per_group
        values = np.zeros((depth + 1, lines))
        values[:depth] = rng.integers(0, 4 * n if trial % 2 else 6, (depth, lines)) * weight
        labels = rng.integers(0, 10**6, (depth, lines)).astype(np.int32)
        # brute force per line
        want_lab, want_val = np.zeros((n, lines), np.int32), np.zeros((n, lines))
        for line in range(lines):
            g = line // per_group
            p = positions[: counts[g], g]
            f = values[: counts[g], line][None, :] + weight * (np.arange(n)[:, None] - p[None, :]) ** 2
            k = f.argmin(axis=1)  # first minimiser = smallest position
            want_lab[:, line], want_val[:, line] = labels[k, line], f[np.arange(n), k]

        bound = float(values.max())
        cand = Candidates(values.copy(), labels, positions, counts, per_group, bound)
        out = np.empty((n, lines), np.int32)
        emit_labels(build_stacks(cand, weight, n), cand.labels, n, out)
        np.testing.assert_array_equal(out, want_lab)
        for keep_values in (True, False):
            cand = Candidates(values.copy(), labels, positions, counts, per_group, bound)
            stacks = build_stacks(cand, weight, n, keep_values=keep_values)
            got_lab, got_val = np.empty((n, lines), np.int32), np.empty((n, lines))
            walk_queries(stacks, cand, weight, n, got_lab, got_val)
            np.testing.assert_array_equal(got_lab, want_lab)
            np.testing.assert_allclose(got_val, want_val, rtol=0, atol=1e-9)


def test_voronoi_edt_method_agrees_up_to_ties():
    rng = np.random.default_rng(7)
    for ndim in (2, 3):
        shape, seeds, _, spacing = random_case(rng, ndim, "anisotropic")
        cells_e, d_e = nearest_seed(shape, seeds, spacing, method="edt")
        cells_v, d_v = nearest_seed(shape, seeds, spacing, method="envelope")
        best = brute_force_d2(shape, seeds, spacing).min(axis=1)
        np.testing.assert_allclose(d_e.ravel(), best, rtol=1e-12)
        np.testing.assert_allclose(d_v.ravel(), best, rtol=1e-12)
        d2 = brute_force_d2(shape, seeds, spacing)
        unique = (d2 == best[:, None]).sum(1) == 1
        np.testing.assert_array_equal(cells_e.ravel()[unique], cells_v.ravel()[unique])


def test_voronoi_partition_does_not_depend_on_seed_order():
    rng = np.random.default_rng(3)
    shape, seeds, _, spacing = random_case(rng, 3, "isotropic")
    perm = rng.permutation(len(seeds))
    cells, _ = nearest_seed(shape, seeds, spacing)
    cells_perm, _ = nearest_seed(shape, seeds[perm], spacing)
    np.testing.assert_array_equal(seeds[cells], seeds[perm][cells_perm])


def test_voronoi_fill_takes_the_seed_value_anisotropic():
    # a column of voxels 1 mm apart next to a seed 3 voxels away along a 0.5 mm axis:
    # physical distance decides (1.5 mm < 2 mm), not the voxel count (3 > 2)
    image = np.arange(20, dtype=np.int16).reshape(4, 5)
    seeds = np.array([[0, 0], [2, 4]])  # physical (0, 0) and (2, 2) mm with spacing (1, 0.5)
    mask, cells = voronoi_fill(image, seeds, spacing=(1.0, 0.5))
    assert mask.dtype == np.int16
    assert cells[3, 0] == 1  # (3, 0) mm: 3 mm from seed 0, sqrt(1 + 4) = 2.24 mm from seed 1
    np.testing.assert_array_equal(mask, image[tuple(seeds[cells].transpose(2, 0, 1))])


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        (np.array([[0, 0], [0, 0]]), "distinct"),
        (np.array([[0, 9]]), "inside the image"),
        (np.array([[0.5, 1.0]]), "integer"),
        (np.zeros((0, 2), int), "N >= 1"),
    ],
)
def test_bad_seeds(seeds, message):
    with pytest.raises(DataError, match=message):
        nearest_seed((4, 5), seeds)


# --- density (Eq. 1) -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "spacing", "h"),
    [((23, 17), (1.0, 1.0), 2.5), ((12, 9, 7), (0.8, 1.3, 2.5), 3.0), ((30, 8, 6), (3.0, 3.0, 3.0), 10.0)],
)
def test_grid_kde_equals_direct_sum(shape, spacing, h):
    rng = np.random.default_rng(11)
    edges = rng.random(shape) < 0.05
    density = edge_density(edges, h, spacing)
    everywhere = np.stack(np.unravel_index(np.arange(edges.size), shape), axis=1)
    direct = kde_direct(np.argwhere(edges), everywhere, h, spacing).reshape(shape)
    assert np.abs(density - direct).max() <= 1e-5 * direct.max()
    # the constant: one isolated edge point gives K(0) = 1 / sqrt(2 pi) at itself
    single = np.zeros(shape, bool)
    single[(0,) * len(shape)] = True
    assert edge_density(single, h, spacing).flat[0] == pytest.approx(1 / np.sqrt(2 * np.pi), rel=1e-6)


def test_edge_subset_is_uniform_random_and_used_by_the_kde():
    rng = np.random.default_rng(0)
    edges = rng.random((20, 20)) < 0.3
    subset = select_edge_points(edges, 25, np.random.default_rng(5))
    assert subset.size == 25 and np.all(edges.flat[subset])
    density = edge_density(edges, 2.0, (1.0, 1.0), num_edge_points=25, rng=np.random.default_rng(5))
    grid = np.stack(np.unravel_index(np.arange(400), (20, 20)), axis=1)
    direct = kde_direct(grid[subset], grid, 2.0).reshape(20, 20)
    assert np.abs(density - direct).max() <= 1e-5 * direct.max()
    # uniform: over many draws every edge point is chosen about equally often
    counts = np.zeros(400)
    gen = np.random.default_rng(1)
    for _ in range(400):
        counts[select_edge_points(edges, 25, gen)] += 1
    chosen = counts[np.flatnonzero(edges)]
    assert stats.chisquare(chosen).pvalue > 1e-3
    # asking for more points than there are uses all of them
    np.testing.assert_array_equal(select_edge_points(edges, 10**6, gen), np.flatnonzero(edges))


def test_all_edge_points_and_a_subset_larger_than_them_agree():
    edges = np.random.default_rng(3).random((15, 12, 9)) < 0.1
    full = edge_density(edges, 4.0, (1.0, 2.0, 0.5))
    same = edge_density(edges, 4.0, (1.0, 2.0, 0.5), num_edge_points=10**6, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(full, same)
    assert not edge_density(np.zeros((5, 5), bool), 2.0).any()


def test_sampling_weights_floor_and_uniform_fallback():
    density = np.zeros((10, 10), np.float32)
    density[2, 3] = 1.0
    w = sampling_weights(density, floor=0.1)
    assert w.mean() == pytest.approx(1.0)
    assert w[0, 0] == pytest.approx(0.1) and w[2, 3] == pytest.approx(0.9 * 100 + 0.1)
    np.testing.assert_array_equal(sampling_weights(np.zeros((4, 4)), 0.05), np.ones((4, 4)))


# --- sampling ---------------------------------------------------------------------------------------


def successive_inclusion(w: np.ndarray, num: int) -> np.ndarray:
    """Exact inclusion probabilities of successive sampling without replacement, by enumeration."""
    p = np.zeros(len(w))
    for seq in itertools.permutations(np.flatnonzero(w), num):
        prob, left = 1.0, w.sum()
        for i in seq:
            prob *= w[i] / left
            left -= w[i]
        p[list(seq)] += prob
    return p


@pytest.mark.parametrize(
    "weights",
    [
        np.array([0.0, 1.0, 2.0, 3.0, 5.0, 9.0]),  # draws with replacement suffice
        np.array([500.0, 400.0, 1.0, 1.0, 2.0, 0.0]),  # the mass sits on two voxels: exponential race
    ],
)
def test_sampling_follows_successive_sampling_law(weights):
    num, trials = 3, 3000
    rng = np.random.default_rng(2024)
    counts = np.zeros(len(weights))
    first = np.zeros(len(weights))
    for _ in range(trials):
        draw = sample_without_replacement(weights, num, rng)
        assert len(set(draw.tolist())) == num and weights[draw].min() > 0
        counts[draw] += 1
        first[draw[0]] += 1
    expected = successive_inclusion(weights, num)
    sd = np.sqrt(trials * expected * (1 - expected)) + 1e-9
    assert np.all(np.abs(counts - trials * expected) <= 4.5 * sd + 1)
    # the first seed is drawn with probability w / sum(w)
    p1 = weights / weights.sum()
    assert np.all(np.abs(first - trials * p1) <= 4.5 * np.sqrt(trials * p1 * (1 - p1)) + 1)


def test_seed_frequencies_follow_the_density():
    """N << M: seeds fall in each density decile in proportion to its probability mass (chi-square)."""
    rng = np.random.default_rng(8)
    image = np.zeros((48, 48), np.float32)
    image[10:30, 12:20] = 1.0
    image[35:40, 5:45] = 2.0
    edges = canny_edges(image)
    weights = sampling_weights(edge_density(edges, 3.0, (1.0, 1.0)), floor=0.05).astype(np.float64)
    decile = np.minimum((stats.rankdata(weights.ravel(), method="ordinal") - 1) * 10 // weights.size, 9)
    mass = np.bincount(decile, weights=weights.ravel(), minlength=10) / weights.sum()
    counts = np.zeros(10)
    for _ in range(300):
        counts += np.bincount(decile[sample_without_replacement(weights, 5, rng)], minlength=10)
    assert mass[-1] > 5 * mass[0]  # the test has teeth: deciles differ a lot
    assert stats.chisquare(counts, counts.sum() * mass).pvalue > 1e-3


def test_sampling_errors_name_both_numbers():
    with pytest.raises(DataError, match="num_points 5 exceeds the number of voxels 4"):
        sample_without_replacement(np.ones(4), 5, np.random.default_rng(0))
    with pytest.raises(DataError, match="num_points 3 exceeds the 2 voxels with nonzero"):
        sample_without_replacement(np.array([0, 1.0, 0, 2.0]), 3, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="num_points"):
        sample_without_replacement(np.ones(4), 0, np.random.default_rng(0))
    # N equal to the number of voxels takes them all
    draw = sample_without_replacement(np.array([1.0, 1e-9, 3.0]), 3, np.random.default_rng(0))
    assert sorted(draw.tolist()) == [0, 1, 2]


# --- edges -------------------------------------------------------------------------------------------


def test_3d_canny_finds_a_thin_sphere_surface():
    grid = np.indices((40, 40, 40)).astype(np.float32) - 19.5
    radius = np.sqrt((grid**2).sum(0))
    image = (radius < 12).astype(np.float32) * 100
    edges = canny_edges(image, sigma=1.0)  # "auto" is the 3D Canny
    r = radius[edges]
    assert np.all(np.abs(r - 12) <= 1.5)  # on the surface
    area = 4 * np.pi * 12**2
    assert 0.6 * area < edges.sum() < 1.6 * area  # one voxel thick, covering the surface
    # every direction is covered: each octant of the sphere has edges
    octants = {tuple(s) for s in np.sign(np.stack(np.nonzero(edges), 1) - 19.5).astype(int)}
    assert len(octants) == 8


def test_nd_canny_in_2d_agrees_with_skimage(real_ct):
    from scipy.ndimage import binary_dilation

    axial = real_ct["image"][:, :, 15].astype(np.float32)
    ours = canny_edges(axial, method="nd")
    ref = canny(axial, 1.0, 0.6, 0.85, use_quantiles=True)
    assert ours.sum() > 200
    # same edges within one pixel; they differ only in weak edges near the low threshold (Sobel and
    # bilinear NMS there, central differences and quantised NMS here)
    assert (ours & binary_dilation(ref)).sum() >= 0.9 * ours.sum()
    assert (ref & binary_dilation(ours)).sum() >= 0.95 * ref.sum()
    assert 0.8 < ours.sum() / ref.sum() < 1.25
    np.testing.assert_array_equal(canny_edges(axial), ref)  # "auto" in 2D is skimage


def _hysteresis_reference(shape, weak, strong):
    """skimage's morphological reconstruction of the strong voxels inside the weak ones with the full
    3^n footprint: the 8 / 26-connected hysteresis of Canny."""
    from skimage.morphology import reconstruction

    seed, mask = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    seed.flat[strong], mask.flat[weak] = 1, 1
    return reconstruction(seed, mask, method="dilation", footprint=np.ones((3,) * len(shape), bool)) > 0


@pytest.mark.parametrize("shape", [(64, 48), (24, 20, 16)])
def test_hysteresis_equals_the_skimage_reference_on_random_sets(shape):
    from anatosynth_components.acis.pseudomask.edges import _hysteresis

    rng = np.random.default_rng(7)
    for density in (0.15, 0.35, 0.6):  # below, near and above the percolation of the weak set
        weak = np.flatnonzero(rng.random(shape) < density)
        strong = weak[rng.random(weak.size) < 0.02]
        ours = _hysteresis(shape, weak, strong)
        np.testing.assert_array_equal(ours, _hysteresis_reference(shape, weak, strong))
        assert 0 < ours.sum() <= weak.size
    assert not _hysteresis(shape, weak, strong[:0]).any()  # no strong voxel, no edge


@pytest.mark.parametrize("method", ["nd", "auto"])
def test_hysteresis_equals_the_skimage_reference_on_a_phantom(method, monkeypatch):
    """The weak and strong sets of a real-like CT (the chest phantom), captured inside canny_nd."""
    from anatosynth_components.acis.pseudomask import edges as edges_module
    from anatosynth_components.data.demo.chest import chest_phantom

    seen = []
    original = edges_module._hysteresis

    def spy(shape, weak, strong):
        seen.append((shape, weak, strong))
        return original(shape, weak, strong)

    monkeypatch.setattr(edges_module, "_hysteresis", spy)
    volume = chest_phantom((48, 48, 32), 0).image.astype(np.float32)
    image = volume if method == "auto" else np.ascontiguousarray(volume[:, :, 16])
    out = canny_edges(image, method=method)
    ((shape, weak, strong),) = seen
    assert out.sum() > 100 and weak.size > strong.size > 0
    np.testing.assert_array_equal(out, _hysteresis_reference(shape, weak, strong))


def test_skimage_apply_hysteresis_threshold_is_not_canny_connectivity():
    """Why ``_hysteresis`` is ours: skimage's joins face neighbours only, Canny joins diagonal ones."""
    from skimage.filters import apply_hysteresis_threshold

    from anatosynth_components.acis.pseudomask.edges import _hysteresis

    image = np.zeros((5, 5))
    image[0, 0], image[1, 1], image[2, 2] = 2.0, 1.0, 1.0  # a strong pixel and a diagonal weak chain
    weak, strong = np.flatnonzero(image > 0.5), np.flatnonzero(image > 1.5)
    assert _hysteresis(image.shape, weak, strong).sum() == 3
    assert apply_hysteresis_threshold(image, 0.5, 1.5).sum() == 1


def test_squared_gradient_is_four_times_the_central_difference_magnitude():
    from anatosynth_components.acis.pseudomask.edges import _squared_gradient

    rng = np.random.default_rng(12)
    for shape in [(7, 9, 5), (3, 4, 3), (8, 6)]:
        x = (rng.random(shape) * 100).astype(np.float32)
        want = np.zeros(shape, np.float32)
        for a in range(x.ndim):
            g = np.zeros(shape, np.float32)
            inner = [slice(None)] * x.ndim
            hi, lo = list(inner), list(inner)
            inner[a], hi[a], lo[a] = slice(1, -1), slice(2, None), slice(None, -2)
            g[tuple(inner)] = (x[tuple(hi)] - x[tuple(lo)]) * np.float32(0.5)
            want += g * g
        np.testing.assert_array_equal(_squared_gradient(x), 4 * want)  # exact: powers of 2


def test_canny_nd_value_range_only_saves_the_reduction(real_ct):
    from anatosynth_components.acis.pseudomask.edges import canny_nd

    volume = real_ct["image"][20:90, 10:80, 5:25]
    shifted = np.subtract(volume, float(volume.min()), dtype=np.float32)
    reference = canny_nd(shifted, 1.0, 0.6, 0.85)
    assert reference.sum() > 100
    np.testing.assert_array_equal(canny_edges(volume), reference)  # passes value_range
    np.testing.assert_array_equal(
        canny_nd(shifted, 1.0, 0.6, 0.85, value_range=float(shifted.max())), reference
    )
    absolute = canny_nd(shifted, 1.0, 20.0, 60.0, use_quantiles=False)
    assert 0 < absolute.sum() < volume.size


def test_slice_method_is_skimage_per_slice(real_ct):
    volume = real_ct["image"][:40, :40, :4].astype(np.float32)
    edges = canny_edges(volume, method="slices")
    for k in range(volume.shape[2]):
        np.testing.assert_array_equal(
            edges[..., k], canny(volume[..., k], 1.0, 0.6, 0.85, use_quantiles=True)
        )


# --- end to end ------------------------------------------------------------------------------------


def test_pseudo_mask_on_real_ct(real_ct):
    image = real_ct["image"]
    result = pseudo_mask(image, 800, np.random.default_rng(0), spacing=3.0)
    assert result.mask.shape == image.shape and result.mask.dtype == image.dtype
    assert result.seeds.shape == (800, 3) and result.seeds.dtype == np.int64
    # Eq. 2: every voxel has the image value of its cell's seed, cells are the nearest seeds
    np.testing.assert_array_equal(result.mask, image[tuple(result.seeds[result.cells].transpose(3, 0, 1, 2))])
    cells, _ = nearest_seed(image.shape, result.seeds, 3.0)
    np.testing.assert_array_equal(result.cells, cells)
    # seeds follow the density: the 10 % densest voxels receive the share of seeds they should
    weights = sampling_weights(result.density, 0.05)
    top = weights >= np.quantile(weights, 0.9)
    expected = weights[top].sum() / weights.sum()
    observed = top[tuple(result.seeds.T)].mean()
    assert expected > 0.15 and abs(observed - expected) < 4 * np.sqrt(expected * (1 - expected) / 800)
    # smaller cells where the density is high
    sizes = np.bincount(result.cells.ravel(), minlength=800)
    rho = stats.spearmanr(sizes, result.density[tuple(result.seeds.T)]).statistic
    assert rho < -0.3
    # a mosaic of the CT: the mask is close to the image
    assert np.median(np.abs(result.mask.astype(float) - image)) < 60


def test_determinism_and_seed_dependence(real_ct):
    image = real_ct["image"][:, :, 10:16]
    a = pseudo_mask(image, 300, 42, spacing=3.0)
    b = pseudo_mask(image, 300, np.random.default_rng(42), spacing=3.0)
    c = pseudo_mask(image, 300, 43, spacing=3.0)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.seeds, b.seeds)
    assert not np.array_equal(a.seeds, c.seeds) and not np.array_equal(a.mask, c.mask)


def test_2d_pseudo_mask_with_edge_subset():
    image = np.zeros((40, 30), np.float32)
    image[10:30, 5:25] = 1.0
    result = pseudo_mask(image, 50, 0, spacing=(0.7, 1.4), bandwidth_mm=4.0, num_edge_points=20)
    assert result.cells.shape == (40, 30) and set(np.unique(result.cells)) == set(range(50))
    np.testing.assert_array_equal(result.mask, image[tuple(result.seeds[result.cells].transpose(2, 0, 1))])


# --- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels_are_a_data_error(bad):
    image = np.ones((8, 8, 8), np.float32)
    image[3, 4, 5] = bad
    with pytest.raises(DataError, match=r"ct\.nii\.gz: 1 non-finite voxels"):
        pseudo_mask(image, 10, 0, name="ct.nii.gz")


def test_too_many_points_names_both_numbers():
    with pytest.raises(DataError, match=r"num_points 65 exceeds the number of voxels 64"):
        pseudo_mask(np.zeros((4, 4, 4)), 65, 0)


def test_4d_input_is_a_data_error_with_the_shape():
    with pytest.raises(DataError, match=r"got shape \(4, 5, 6, 2\) \(4D\)"):
        pseudo_mask(np.zeros((4, 5, 6, 2)), 3, 0)


def test_image_without_edges_is_sampled_uniformly(caplog):
    image = np.full((12, 12, 12), 7, np.int16)
    with caplog.at_level(logging.WARNING):
        result = pseudo_mask(image, 40, 0, name="flat")
    assert "flat: Canny found no edges" in caplog.text
    assert not result.edges.any() and not result.density.any()
    assert np.all(result.mask == 7) and len(np.unique(result.cells)) == 40
    # uniform: with no edges the weights are flat, so the draw equals plain uniform sampling
    ref = sample_without_replacement(np.ones(image.size), 40, np.random.default_rng(0))
    np.testing.assert_array_equal(np.ravel_multi_index(tuple(result.seeds.T), image.shape), ref)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"num_points": 0}, "num_points"),
        ({"num_points": 2.5}, "num_points"),
        ({"bandwidth_mm": 0.0}, "bandwidth_mm"),
        ({"bandwidth_mm": -3}, "bandwidth_mm"),
        ({"floor": 1.5}, "floor"),
        ({"low_threshold": 0.9, "high_threshold": 0.5}, "low_threshold"),
        ({"low_threshold": 1.2}, "low_threshold"),
        ({"canny_sigma": 0}, "canny_sigma"),
        ({"edge_method": "sobel"}, "edge_method"),
        ({"voronoi_method": "kdtree"}, "voronoi_method"),
        ({"num_edge_points": 0}, "num_edge_points"),
        ({"spacing": (1.0, -1.0)}, "spacing"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_key(kwargs, key):
    args = {"num_points": 5, **kwargs}
    with pytest.raises(ConfigError, match=key):
        pseudo_mask(np.random.default_rng(0).random((8, 8)), args.pop("num_points"), 0, **args)


def test_fast_order_statistics_are_exact():
    from anatosynth_components.acis.pseudomask.edges import order_statistics

    rng = np.random.default_rng(0)
    for values in (rng.random(300_001).astype(np.float32), rng.integers(0, 4, 200_000).astype(np.float32)):
        ordered = np.sort(values)
        for first in (0, 1234, values.size // 2, values.size - 2):
            assert order_statistics(values, first, first + 1) == (ordered[first], ordered[first + 1])
