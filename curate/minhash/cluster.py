"""Verified pairs → groups: leader clustering (every dropped row is itself a near-duplicate of its
survivor) or connected components (which chain A~B~C)."""
from __future__ import annotations

import numpy as np

from .config import DEFAULT_THRESHOLD
from .lsh import near_duplicate_pairs

def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Cluster label of each row: the smallest row index of its connected component."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n)).tocsr()
    _, comp = connected_components(g, directed=False)
    first = np.full(comp.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(first, comp, np.arange(n))
    return first[comp]


def _leaders_by_class(n: int, i: np.ndarray, j: np.ndarray, est: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """:func:`_leaders` over classes of identical signatures (pairs with estimate 1.0).

    Identical signatures are paired only with the first of them (see :func:`near_duplicate_pairs`),
    so they are merged first and clustered as one node (with the best rank of its members):
    otherwise a leader that takes the first copy would leave the other copies behind.
    """
    same = est >= 1.0
    cls = _components(n, i[same], j[same])  # label = smallest member
    _, node, inv = np.unique(cls, return_index=True, return_inverse=True)
    best = np.full(len(node), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, inv, rank)
    ci, cj = inv[i[~same]], inv[j[~same]]
    keep = ci != cj
    lead = _leaders(len(node), ci[keep], cj[keep], best)  # class → leader class
    # a class's representative: its best-ranked member
    rep = np.empty(len(node), dtype=np.int64)
    order = np.lexsort((rank, inv))
    firsts = np.concatenate(([True], inv[order][1:] != inv[order][:-1]))
    rep[inv[order][firsts]] = order[firsts]
    return rep[lead[inv]]


def _leaders(n: int, i: np.ndarray, j: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Leader clustering: label of each row = its leader's position.

    Rows are visited best ``rank`` first (lower is better); a row not yet in a cluster becomes a
    leader and takes every row it is paired with that is not yet in a cluster. So every member is
    itself a verified near-duplicate of its leader: no chains A~B~C putting A and C together
    when they are not alike (connected components do that, and on templated rows such chains
    swallow many distinct rows). Deterministic: ``rank`` is a strict order.
    """
    label = np.arange(n, dtype=np.int64)
    if len(i) == 0:
        return label
    a = np.concatenate((i, j))
    b = np.concatenate((j, i))
    # neighbours of each row, best rank first (so a leader's claims do not depend on pair order)
    o = np.lexsort((rank[b], a))
    a, b = a[o], b[o]
    nodes, starts = np.unique(a, return_index=True)
    ends = np.append(starts[1:], len(a))
    visit = np.argsort(rank[nodes], kind="stable")
    assigned = np.zeros(n, dtype=bool)
    bl = b.tolist()
    nl, sl, el = nodes.tolist(), starts.tolist(), ends.tolist()
    for k in visit.tolist():
        u = nl[k]
        if assigned[u]:
            continue
        assigned[u] = True
        for v in bl[sl[k]:el[k]]:
            if not assigned[v]:
                assigned[v] = True
                label[v] = u
    return label


def near_duplicate_clusters(signatures: np.ndarray, threshold: float = DEFAULT_THRESHOLD,
                            bands: int | None = None,
                            rows: int | None = None, window: int = 16,
                            progress: bool | None = None, rank: np.ndarray | None = None,
                            clustering: str = "leader") -> np.ndarray:
    """Cluster label of each row (int64) from the verified pairs (estimated Jaccard ≥ threshold).

    ``clustering="leader"`` (default): :func:`_leaders` with ``rank`` (default: row position);
    the label is the leader's position, and every member is a verified near-duplicate of it.
    ``clustering="components"``: connected components, labelled by their smallest row index, so
    two members of a chain A~B~C may themselves be less similar than the threshold (what
    datasketch/Data-Juicer-style union-find does). A row with no near-duplicate is its own
    cluster. With a content-based ``rank`` (see :func:`priority_rank`) the partition does not
    depend on the row order.
    """
    n = len(signatures)
    i, j, est = near_duplicate_pairs(signatures, threshold, bands, rows, window, progress)
    return cluster_pairs(n, i, j, est, rank, clustering)


CLUSTERINGS = ("leader", "components")


def cluster_pairs(n: int, i: np.ndarray, j: np.ndarray, est: np.ndarray, rank: np.ndarray | None = None,
                  clustering: str = "leader") -> np.ndarray:
    """Labels of ``n`` rows from verified pairs ``(i, j, est)`` (see :func:`near_duplicate_clusters`).

    With ``"leader"`` the label is the position of the cluster's leader (its best-ranked row)."""
    if clustering == "components":
        return _components(n, i, j)
    if clustering != "leader":
        raise ValueError(f"clustering must be one of {CLUSTERINGS}, got {clustering!r}")
    rank = np.arange(n) if rank is None else np.asarray(rank)
    # Only rows in some pair can join a cluster; the others are their own leaders. The clustering
    # runs on those rows alone (numbered in order, so "smallest member" and every order it reads
    # stay as they were): at millions of rows, a sixth of them in pairs, a fraction of the work.
    rows = np.unique(np.concatenate((i, j))) if len(i) else np.zeros(0, dtype=np.int64)
    if len(rows) == n:
        return _leaders_by_class(n, i, j, est, rank)
    out = np.arange(n, dtype=np.int64)
    if len(rows):
        sub = _leaders_by_class(len(rows), np.searchsorted(rows, i), np.searchsorted(rows, j), est, rank[rows])
        out[rows] = rows[sub]
    return out
