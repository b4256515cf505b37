"""Connected components of a mask, labelled band by band, joined across the bands (numpy + OpenCV).

``label_bands(mask, select, connectivity, band_rows)`` labels the pixels that ``select`` picks,
``band_rows`` rows at a time, with ``cv2.connectedComponentsWithStats``; pieces of one component
in consecutive bands are joined by a union-find over the rows where two bands meet (the last row
of one band and the first row of the next: the same column, and for 8-connectivity the two
diagonal neighbours). The result (``Components``) holds, per component of the whole image, its
area, its bounding box's top-left corner, whether it touches the image border, and (when asked)
the foreground classes along its edge. ``Components.relabel(band, top)`` gives a band's pixels
their whole-image component, so that a second pass can edit the mask band by band.

Memory beyond the mask: one band's int32 labels (``band_rows`` x W x 4 bytes) and a few entries
per component (a quarter of the pixels at worst, for isolated specks); never a whole-image label
array. With ``band_rows`` >= the height the whole image is one band, i.e. OpenCV's own labelling.
The result does not depend on ``band_rows`` (``tests/test_postprocess.py``): every table is
per component, and components are identified by the smallest id of their pieces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

Select = Callable[[np.ndarray], np.ndarray]
#: Classes of a uint8 mask; the key of an (id, class) pair is ``id * CLASSES + class``.
CLASSES = 256


def find_roots(parent: np.ndarray) -> np.ndarray:
    """Every node's root (pointer jumping; ``parent[i] <= i`` always holds, so no cycle can occur)."""
    root = parent.copy()
    while True:
        jumped = root[root]
        if np.array_equal(jumped, root):
            return root
        root = jumped


def union(parent: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """Join the trees of each pair (a[i], b[i]); the root of a joined tree is its smallest id."""
    while len(a):
        ra, rb = a.copy(), b.copy()
        while True:  # roots of the pairs only (not the whole array)
            na, nb = parent[ra], parent[rb]
            if np.array_equal(na, ra) and np.array_equal(nb, rb):
                break
            ra, rb = na, nb
        differ = ra != rb
        if not differ.any():
            return
        low, high = np.minimum(ra[differ], rb[differ]), np.maximum(ra[differ], rb[differ])
        np.minimum.at(parent, high, low)
        a, b = a[differ], b[differ]


@dataclass
class _Growing:
    """A numpy array that grows by appending (amortised doubling)."""

    dtype: type
    data: np.ndarray = field(init=False)
    size: int = 0

    def __post_init__(self) -> None:
        self.data = np.zeros(64, self.dtype)

    def extend(self, values: np.ndarray) -> None:
        need = self.size + len(values)
        if need > len(self.data):
            grown = np.zeros(max(need, 2 * len(self.data)), self.dtype)
            grown[:self.size] = self.data[:self.size]
            self.data = grown
        self.data[self.size:need] = values
        self.size = need

    @property
    def view(self) -> np.ndarray:
        return self.data[:self.size]


@dataclass
class Components:
    """The components of one labelling of a whole mask (see the module docstring)."""

    select: Select
    connectivity: int
    band_rows: int
    offsets: list[int]  # band index -> id of its local label 1
    root: np.ndarray  # id -> the id that names its component (the smallest of its pieces)
    area: np.ndarray  # root id -> pixels of the component (0 for ids that are not roots)
    top: np.ndarray  # root id -> first row of its bounding box
    left: np.ndarray  # root id -> first column of its bounding box
    border: np.ndarray  # root id -> touches the image border
    edge_pairs: tuple[np.ndarray, np.ndarray] | None = None  # (root * CLASSES + class, count), if asked
    single_band: np.ndarray | None = None  # the labels when the whole mask was one band (kept: no second labelling)

    @property
    def roots(self) -> np.ndarray:
        """The ids that name a component, in id order."""
        return np.flatnonzero(self.root == np.arange(len(self.root)))

    def largest(self, candidates: np.ndarray | None = None) -> int | None:
        """The root of the largest component (ties: top-most bounding box, then left-most, then smallest id)."""
        roots = self.roots if candidates is None else candidates
        if not len(roots):
            return None
        order = np.lexsort((roots, self.left[roots], self.top[roots], -self.area[roots]))
        return int(roots[order[0]])

    def edge_class(self) -> np.ndarray:
        """root id -> the foreground class most often 4-adjacent to it (ties: the lower class; 0: none)."""
        out = np.zeros(len(self.root), np.uint8)
        if self.edge_pairs is None or not len(self.edge_pairs[0]):
            return out
        keys, counts = self.edge_pairs
        roots, classes = keys // CLASSES, keys % CLASSES
        order = np.lexsort((classes, -counts, roots))  # per root: most frequent first, then lower class
        first = np.ones(len(order), bool)
        first[1:] = roots[order][1:] != roots[order][:-1]
        chosen = order[first]
        out[roots[chosen]] = classes[chosen]
        return out

    def band_labels(self, band: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Band ``index`` labelled again: (int32 local labels, local label -> root id, -1 for label 0).

        A caller turns a per-component table into a per-pixel answer with one look-up,
        ``table[roots][labels]``, so that no per-pixel id array is ever made."""
        if self.single_band is not None and index == 0:
            labels, count = self.single_band, len(self.root) + 1
        else:
            count, labels = cv2.connectedComponents(self.select(band).view(np.uint8), connectivity=self.connectivity,
                                                    ltype=cv2.CV_32S)
        offset = self.offsets[index]
        roots = np.empty(count, np.int64)
        roots[0] = -1
        roots[1:] = self.root[offset:offset + count - 1]
        return labels, roots


def _row_ids(labels_row: np.ndarray, offset: int) -> np.ndarray:
    """One row's local labels -> ids (-1 where not selected)."""
    return np.where(labels_row > 0, labels_row.astype(np.int64) + (offset - 1), -1)


def _neighbour_pairs(ids_a: np.ndarray, ids_b: np.ndarray, diagonal: bool) -> tuple[np.ndarray, np.ndarray]:
    """(id in row a, id in row b) of the selected pixels of two adjacent rows that touch."""
    pairs_a, pairs_b = [ids_a], [ids_b]
    if diagonal:
        pairs_a += [ids_a[:-1], ids_a[1:]]
        pairs_b += [ids_b[1:], ids_b[:-1]]
    a, b = np.concatenate(pairs_a), np.concatenate(pairs_b)
    keep = (a >= 0) & (b >= 0)
    if not keep.any():
        return a[:0], b[:0]
    unique = np.unique(np.stack([a[keep], b[keep]]), axis=1)
    return unique[0], unique[1]


def _edge_keys(labels: np.ndarray, values: np.ndarray, offset: int, above_ids: np.ndarray | None,
               above_values: np.ndarray | None) -> np.ndarray:
    """Keys ``id * CLASSES + class`` of each selected pixel 4-adjacent to a foreground pixel.

    ``labels``/``values``: the band's local labels and classes; ``above_*``: the last row of the
    band before it (ids, classes; None for the first band), paired here with the band's first row."""
    keys = []
    pairs = [(labels[:, :-1], values[:, 1:]), (labels[:, 1:], values[:, :-1]),
             (labels[:-1], values[1:]), (labels[1:], values[:-1])]
    for own, other in pairs:
        hit = own > 0
        hit &= other > 0
        keys.append((own[hit].astype(np.int64) + (offset - 1)) * CLASSES + other[hit])
    if above_ids is not None and above_values is not None:
        first = _row_ids(labels[0], offset)
        for own, other in ((above_ids, values[0]), (first, above_values)):
            hit = (own >= 0) & (other > 0)
            keys.append(own[hit] * CLASSES + other[hit])
    return np.concatenate(keys)


def label_bands(mask: np.ndarray, select: Select, connectivity: int, band_rows: int,
                edge_classes: bool = False) -> Components:
    """Label ``select(mask)`` band by band (module docstring); ``edge_classes``: tally the classes along each edge."""
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    height, width = mask.shape
    band_rows = max(1, int(band_rows))
    parent, area, top, left, border = (_Growing(np.int64) for _ in range(5))
    offsets: list[int] = []
    pair_keys: list[tuple[np.ndarray, np.ndarray]] = []
    previous_ids: np.ndarray | None = None
    previous_values: np.ndarray | None = None
    for first_row in range(0, height, band_rows):
        band = mask[first_row:first_row + band_rows]
        count, labels, stats, _ = cv2.connectedComponentsWithStats(select(band).view(np.uint8),
                                                                    connectivity=connectivity, ltype=cv2.CV_32S)
        offset = parent.size
        offsets.append(offset)
        stats = stats[1:].astype(np.int64)
        parent.extend(np.arange(offset, offset + count - 1, dtype=np.int64))
        area.extend(stats[:, cv2.CC_STAT_AREA])
        top.extend(stats[:, cv2.CC_STAT_TOP] + first_row)
        left.extend(stats[:, cv2.CC_STAT_LEFT])
        end_row = stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT] + first_row
        touches = ((stats[:, cv2.CC_STAT_LEFT] == 0) | (stats[:, cv2.CC_STAT_LEFT] + stats[:, cv2.CC_STAT_WIDTH] == width)
                   | (stats[:, cv2.CC_STAT_TOP] + first_row == 0) | (end_row == height))
        border.extend(touches.astype(np.int64))
        first_ids = _row_ids(labels[0], offset)
        if previous_ids is not None:
            a, b = _neighbour_pairs(previous_ids, first_ids, diagonal=connectivity == 8)
            union(parent.data[:parent.size], a, b)
        if edge_classes:
            keys, counts = np.unique(_edge_keys(labels, band, offset, previous_ids, previous_values),
                                     return_counts=True)
            pair_keys.append((keys, counts))
        previous_ids, previous_values = _row_ids(labels[-1], offset), band[-1].copy()
    components = _finish(select, connectivity, band_rows, offsets, parent.view, area.view, top.view, left.view,
                         border.view, pair_keys if edge_classes else None)
    if len(offsets) == 1:
        components.single_band = labels
    return components


def _finish(select: Select, connectivity: int, band_rows: int, offsets: list[int], parent: np.ndarray,
            area: np.ndarray, top: np.ndarray, left: np.ndarray, border: np.ndarray,
            pair_keys: list[tuple[np.ndarray, np.ndarray]] | None) -> Components:
    """Per-piece tables -> per-component tables (indexed by root id)."""
    root = find_roots(parent)
    n = len(root)
    total_area = np.bincount(root, weights=area, minlength=n).astype(np.int64)
    first_top = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_top, root, top)
    first_left = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_left, root, left)
    touches = np.bincount(root, weights=border, minlength=n) > 0
    edges = None
    if pair_keys is not None:
        keys = np.concatenate([k for k, _ in pair_keys]) if pair_keys else np.zeros(0, np.int64)
        counts = np.concatenate([c for _, c in pair_keys]) if pair_keys else np.zeros(0, np.int64)
        keys = root[keys // CLASSES] * CLASSES + keys % CLASSES
        merged, inverse = np.unique(keys, return_inverse=True)
        edges = (merged, np.bincount(inverse, weights=counts).astype(np.int64))
    return Components(select, connectivity, band_rows, offsets, root, total_area, first_top, first_left, touches,
                      edges)
