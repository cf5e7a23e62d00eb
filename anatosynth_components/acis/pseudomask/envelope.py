"""Integer lower envelopes of parabolas along one axis, for many lines at once.

This is the 1-D step of the separable nearest-seed transform of :mod:`.voronoi` (Felzenszwalb &
Huttenlocher 2012), with one stack per line and all lines advanced together by NumPy.

Problem. ``L`` lines, each with candidates ``k = 0, 1, ...`` at increasing positions ``p_k``, with a
value ``v_k`` (a squared distance left by the previous pass) and a label (a seed number). For every
line and every integer position ``i`` in ``[0, n)``: the candidate that minimises
``f_k(i) = v_k + w (i - p_k)^2``, the one with the smaller position on a tie.

Algorithm. The parabolas of two candidates ``a < b`` cross once, at
``s = (h_b - h_a) / (2 w (p_b - p_a))`` with ``h = v + w p^2``: ``a`` wins the integers ``i <= s``
(the tie at ``i = s`` included), ``b`` those above. Candidates are pushed in order onto a stack per
line; every stacked element keeps ``lo``, the first integer it wins. Pushing ``b`` onto the top
``a`` gives ``lo_b = floor(s) + 1``; while ``lo_b <= lo_a`` (``a`` would win no integer) ``a`` is
popped and ``b`` is compared with the element below. Unlike the textbook stack (which keeps
parabolas that win only between two integers), elements that win no integer of ``[0, n)`` are
popped at once, so on every stack the elements win strictly increasing, non-empty integer
intervals ``[lo_e, lo_next - 1]``; this is exact because an element that wins no integer now can
never win one later. A sentinel (value 0 far left of 0, ``lo = -inf``) under every stack is never
popped, so no stack is ever empty, and every real element has ``lo >= 0``.

NumPy formulation. Step ``k`` pushes candidate ``k`` on all lines with a fixed number of vector
operations: the top is candidate ``k - 1`` and the element below it is kept in per-line registers,
so the first two pops (on the CT of the benchmark about 80 % of all pops) are vector operations
over all lines; deeper pops (about 20 % of the line-steps) follow the per-line ``prev`` pointers on
the subset of lines that need them. Lines come in ``G`` groups of ``M`` lines that share the
candidates' positions (in 3D the lines of one plane in the middle pass); group ``g`` has ``count_g``
candidates and groups are sorted by decreasing count, so step ``k`` works on a prefix of the lines.
Elements are named by their step ``k`` (``K`` for the sentinel); element ``k`` of line ``l`` sits at
flat index ``k L + l`` of the (K + 1, L) arrays.

Output. Labels only (the last pass): every stacked element ``e`` writes ``label_e - label_below``
at ``(lo_e, line)`` of a zeroed (n, L) array and a running sum along the positions turns it into the
label map. Labels and values (the middle pass, and :func:`.voronoi.nearest_seed`): a walk down every
stack as ``i`` goes from ``n - 1`` to 0 reads off ``label_e`` and ``v_e + w (i - p_e)^2``.

Exactness: every decision compares a crossing with an integer, in float64; see :mod:`.voronoi` for
when float64 arithmetic is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Candidates:
    """The candidates of ``L = G * M`` lines, at most ``K`` per line.

    Attributes:
        values: (K + 1, L) float64 ``v``; row ``K`` is scratch space (the sentinel's). Overwritten
            with ``h = v + w p^2`` by :func:`build_stacks` unless ``keep_values``.
        labels: (K, L) int32 label of every candidate.
        positions: (K, G) float64 position of candidate ``k`` of group ``g``; increasing in ``k``
            for ``k < counts[g]``.
        counts: (G,) number of candidates of every group, non-increasing.
        per_group: ``M``, the number of lines of a group (lines ``g M .. g M + M - 1``).
        bound: an upper bound of every value (places the sentinel).
    """

    values: np.ndarray
    labels: np.ndarray
    positions: np.ndarray
    counts: np.ndarray
    per_group: int
    bound: float


@dataclass
class Stacks:
    """The stacks of all lines after :func:`build_stacks`.

    Attributes:
        h: (K + 1, L) ``v + w p^2`` (row ``K``: the sentinel).
        lo: (K + 1, L) float32 first integer won (stale for popped elements).
        prev: (K, L) step of the element below (``K``: the sentinel), for the elements still stacked.
        alive: (K, L) bool, the element is on its stack at the end.
        positions: (K + 1, G) positions, row ``K`` the sentinel's.
        top: (L,) step of the top element of every line.
        values_kept: ``h`` is a separate array (the candidates' ``values`` still hold ``v``).
    """

    h: np.ndarray
    lo: np.ndarray
    prev: np.ndarray
    alive: np.ndarray
    positions: np.ndarray
    top: np.ndarray
    values_kept: bool


class _Builder:
    """The build's state: stacks, the per-line registers of the second element, scratch buffers."""

    def __init__(self, cand: Candidates, weight: float, n: int, keep_values: bool) -> None:
        num, groups = cand.positions.shape
        self.K, self.G, self.M = num, groups, cand.per_group
        self.L = groups * self.M
        self.w = float(weight)
        self.values = cand.values
        step_type = np.int16 if num < 2**15 else np.int32
        self.h = np.empty_like(cand.values) if keep_values else cand.values
        self.lo = np.empty((num + 1, self.L), dtype=np.float32)  # integers and -inf: exact
        self.prev = np.empty((num, self.L), dtype=step_type)
        self.alive = np.zeros((num, self.L), dtype=bool)
        # the sentinel: every candidate crosses it left of -1 (far^2 > n^2 + bound / w)
        far = 2.0 * (n + float(np.sqrt(max(cand.bound, 0.0) / self.w))) + 4.0
        self.P = np.empty((num + 1, groups))
        self.P[:num] = cand.positions
        self.P[num] = -far
        self.TP = 2.0 * self.w * self.P  # 2 w p
        self.h[num] = self.w * far * far
        self.lo[num] = -np.inf
        shape = (groups, self.M)
        # registers of the second element of every stack: h, lo, 2 w p and step
        self.h2, self.tp2 = np.empty(shape), np.empty(shape)
        self.lo2, self.j2 = np.empty(shape, dtype=np.float32), np.empty(shape, dtype=step_type)
        self.s, self.s2, self.denominator = np.empty(shape), np.empty(shape), np.empty(shape)
        self.pop1, self.pop2, self.keep = (np.empty(shape, dtype=bool) for _ in range(3))
        self.masks = {size: np.empty(shape, dtype=f"i{size}") for size in (2, 4, 8)}
        self.scratch = {size: np.empty(shape, dtype=f"i{size}") for size in (2, 4, 8)}
        self.minus_one = np.full(shape, -1.0)
        self.active = (np.asarray(cand.counts)[None, :] > np.arange(num)[:, None]).sum(axis=1)

    def row(self, array: np.ndarray, k: int, a: int) -> np.ndarray:
        """Row ``k`` of a (rows, L) array as (a, M): the lines of the ``a`` first groups."""
        return array[k].reshape(self.G, self.M)[:a]

    def first(self, a: int) -> None:
        """Candidate 0 goes on the sentinel and wins from 0 on."""
        self.row(self.lo, 0, a).fill(0.0)
        self.row(self.prev, 0, a).fill(self.K)
        self.h2[:a], self.lo2[:a], self.tp2[:a], self.j2[:a] = (
            self.h[self.K, 0],
            -np.inf,
            self.TP[self.K, 0],
            self.K,
        )

    def make_masks(self, keep: np.ndarray, a: int) -> None:
        """0 / -1 integer masks of ``keep`` in the widths of the registers, for :meth:`select`."""
        for mask in self.masks.values():
            np.negative(keep.view(np.int8), out=mask[:a], casting="unsafe")

    def select(self, dst: np.ndarray, src: np.ndarray | float, a: int) -> None:
        """``dst = src`` where the last :meth:`make_masks` was true, bit for bit, on the first ``a``
        groups' lines. Branch-free: ``np.copyto(..., where=)`` and ``np.where`` are several times
        slower on masks as irregular as these."""
        size = dst.dtype.itemsize
        kind = f"i{size}"
        mask = self.masks[size][:a]
        bits = self.scratch[size][:a]
        source = np.asarray(src, dtype=dst.dtype).view(kind)
        np.bitwise_xor(dst.view(kind), source, out=bits)
        bits &= mask
        np.bitwise_xor(dst.view(kind), bits, out=dst.view(kind))

    def step(self, k: int, a: int) -> None:
        """Push candidate ``k`` on the lines of the ``a`` first groups, popping what it hides."""
        pk = self.P[k, :a, None]  # (a, 1)
        hk = np.add(self.row(self.values, k, a), self.w * pk * pk, out=self.row(self.h, k, a))
        self.row(self.alive, k, a)[...] = True
        if k == 0:
            self.first(a)
            return
        # crossings with the top (candidate k - 1 on every active line) and with the second
        h1, lo1 = self.row(self.h, k - 1, a), self.row(self.lo, k - 1, a)
        tpk, tp1 = self.TP[k, :a, None], self.TP[k - 1, :a, None]
        s = np.subtract(hk, h1, out=self.s[:a])
        s /= tpk - tp1
        h2, lo2, tp2, j2 = self.h2[:a], self.lo2[:a], self.tp2[:a], self.j2[:a]
        s2 = np.subtract(hk, h2, out=self.s2[:a])
        s2 /= np.subtract(tpk, tp2, out=self.denominator[:a])
        pop1 = np.less(s, lo1, out=self.pop1[:a])
        pop2 = np.less(s2, lo2, out=self.pop2[:a])
        pop2 &= pop1
        keep = np.logical_not(pop1, out=self.keep[:a])
        self.row(self.alive, k - 1, a)[...] &= keep
        # the crossing with the new top: s2 where the top is popped, else s. Where the top stays
        # s2 <= s, where it is popped because it is hidden s2 >= s, and where it is popped only
        # because it wins no integer floor(s2) == floor(s): so max(s, s2) has the right floor.
        np.maximum(s, s2, out=s)
        # the new second element: candidate k - 1 where it stays on top, else unchanged
        self.make_masks(keep, a)
        self.select(h2, h1, a)
        self.select(lo2, lo1, a)
        self.select(tp2, tp1, a)
        self.select(j2, k - 1, a)
        deep = np.flatnonzero(pop2)
        if deep.size:
            self.pop_deep(k, deep, hk.reshape(-1), s.reshape(-1))
        np.maximum(s, self.minus_one[:a], out=s)  # only a push onto the sentinel is below -1
        np.floor(s, out=s)
        np.add(s, 1.0, out=self.row(self.lo, k, a), casting="same_kind")
        np.copyto(self.row(self.prev, k, a), j2)

    def pop_deep(self, k: int, lines: np.ndarray, hk: np.ndarray, s: np.ndarray) -> None:
        """Lines whose top and second were both popped: follow ``prev`` until an element stays.

        ``lines``: flat line indices; ``hk``: candidate ``k``'s ``h`` per line; ``s``: its crossing
        per line, updated in place. The registers receive the element that stays.
        """
        h2, lo2, tp2, j2 = (r.reshape(-1) for r in (self.h2, self.lo2, self.tp2, self.j2))
        h_all, lo_all, prev_all = self.h.reshape(-1), self.lo.reshape(-1), self.prev.reshape(-1)
        tp_all, alive = self.TP.reshape(-1), self.alive.reshape(-1)
        flat = j2[lines].astype(np.intp) * self.L + lines  # intp: NumPy converts others on every use
        alive[flat] = False
        grouped = self.G > 1
        group = lines // self.M if grouped else 0
        tpk = self.TP[k, group]
        hq = hk[lines]
        while True:
            step = prev_all[flat].astype(np.intp)
            flat = step * self.L + lines
            tpe = tp_all[step * self.G + group] if grouped else tp_all[step]
            he, loe = h_all[flat], lo_all[flat]
            se = np.subtract(hq, he)
            se /= tpk - tpe
            h2[lines], lo2[lines], tp2[lines], j2[lines], s[lines] = he, loe, tpe, step, se
            more = se < loe  # never true for the sentinel
            if not more.any():
                return
            lines, flat, hq = lines[more], flat[more], hq[more]
            if grouped:
                group, tpk = group[more], tpk[more]
            alive[flat] = False


def build_stacks(cand: Candidates, weight: float, n: int, keep_values: bool = False) -> Stacks:
    """Push every candidate, in order, on the stacks of all lines (see the module docstring).

    Args:
        cand: the candidates.
        weight: ``w``, the squared spacing along the axis.
        n: the positions queried later are ``0 .. n - 1``.
        keep_values: store ``h`` in a new array instead of ``cand.values``.
    """
    builder = _Builder(cand, weight, n, keep_values)
    for k in range(builder.K):
        builder.step(k, int(builder.active[k]))
    top = np.repeat(np.asarray(cand.counts, dtype=np.intp) - 1, builder.M)
    return Stacks(builder.h, builder.lo, builder.prev, builder.alive, builder.P, top, keep_values)


def emit_labels(stacks: Stacks, labels: np.ndarray, n: int, out: np.ndarray) -> None:
    """``out`` (n, L) int32, C-contiguous: the label of the winner at every position of every line.

    Row by row of the stacks (the arrays stay in cache): every stacked element ``e`` of step ``k``
    with ``lo_e < n`` writes ``label_e - label_below`` at ``(lo_e, line)``; the ``lo`` of one line's
    elements differ, so no write collides. A running sum over the positions then gives the labels.
    """
    num, num_lines = stacks.alive.shape
    flat_labels, flat_out = labels.reshape(-1), out.reshape(-1)
    out.fill(0)
    for k in range(num):
        lines = np.flatnonzero(stacks.alive[k] & (stacks.lo[k] < n))
        if not lines.size:
            continue
        delta = labels[k][lines]
        below = stacks.prev[k][lines].astype(np.intp)
        real = below < num  # the sentinel has no label
        if real.all():
            delta -= flat_labels[below * num_lines + lines]
        elif real.any():
            delta[real] -= flat_labels[below[real] * num_lines + lines[real]]
        flat_out[stacks.lo[k][lines].astype(np.intp) * num_lines + lines] = delta
    for i in range(1, n):  # np.cumsum along axis 0 is several times slower
        np.add(out[i - 1], out[i], out=out[i])


def walk_queries(
    stacks: Stacks,
    cand: Candidates,
    weight: float,
    n: int,
    out_labels: np.ndarray,
    out_values: np.ndarray,
    out_rows: np.ndarray | None = None,
) -> None:
    """Label and value ``v_e + w (i - p_e)^2`` of the winner ``e`` at every position of every line.

    ``out_labels``, ``out_values``: written ``out[i] = (L,) row`` (views allowed), or with
    ``out_rows`` ``out[out_rows, i] = (G, M) row``: group ``g`` goes to ``out[out_rows[g], i]``.
    """
    num_lines, groups, per_group = cand.labels.shape[1], cand.positions.shape[1], cand.per_group
    w = float(weight)
    lo_all, prev_all = stacks.lo.reshape(-1), stacks.prev.reshape(-1)
    labels, values, positions = cand.labels.reshape(-1), cand.values.reshape(-1), stacks.positions.reshape(-1)
    lines = np.arange(num_lines)
    line_group = lines // per_group

    def read(step: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Label, value and position of the elements ``step`` of the lines ``at``."""
        flat = step * num_lines + at
        p = positions[step * groups + line_group[at]]
        v = values[flat] if stacks.values_kept else values[flat] - w * p * p
        return labels[flat], v, p

    cur = stacks.top.copy()
    cur_lo = lo_all[cur * num_lines + lines]
    cur_lab, cur_v, cur_p = read(cur, lines)
    tmp = np.empty(num_lines)
    for i in range(n - 1, -1, -1):
        move = np.flatnonzero(cur_lo > i)
        if move.size:
            walking, step = move, cur[move]
            while walking.size:
                step = prev_all[step * num_lines + walking].astype(np.intp)
                cur[walking], cur_lo[walking] = step, lo_all[step * num_lines + walking]
                still = cur_lo[walking] > i
                walking, step = walking[still], step[still]
            cur_lab[move], cur_v[move], cur_p[move] = read(cur[move], move)
        np.subtract(i, cur_p, out=tmp)
        tmp *= tmp
        tmp *= w
        tmp += cur_v
        if out_rows is None:
            out_labels[i] = cur_lab.reshape(out_labels.shape[1:])
            out_values[i] = tmp.reshape(out_values.shape[1:])
        else:
            out_labels[out_rows, i] = cur_lab.reshape(groups, per_group)
            out_values[out_rows, i] = tmp.reshape(groups, per_group)
