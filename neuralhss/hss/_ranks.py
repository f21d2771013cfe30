"""Per-level HSS ranks, checked in one place for the operator and the compression."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["level_ranks"]


def level_ranks(rank: int | Sequence[int], n_levels: int, leaf_size: int) -> tuple[int, ...]:
    """One rank per tree level, level 1 (children of the root) to level ``n_levels`` (leaves).

    Parameters
    ----------
    rank : int or sequence of int
        One rank for every level, or one per level.
    n_levels : int
        Levels of the tree below the root.
    leaf_size : int
        Points per leaf: a leaf basis has at most that many columns.

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        A non-integer or non-positive rank, the wrong number of ranks, or a leaf rank above
        ``leaf_size``.
    """
    if isinstance(rank, int | float) and not isinstance(rank, bool):
        if int(rank) != rank or rank < 1:
            raise ValueError(f"rank={rank!r} must be an integer >= 1")
        if rank > leaf_size:  # also on a one-leaf tree, where no basis uses it
            raise ValueError(f"rank {int(rank)} exceeds the leaf size {leaf_size}: a leaf basis has "
                             f"at most as many columns as points; use rank <= {leaf_size} or a "
                             "larger leaf_size")
        ranks = (int(rank),) * n_levels
    else:
        ranks = tuple(int(r) for r in rank)
        if len(ranks) != n_levels:
            raise ValueError(
                f"rank has {len(ranks)} entries but the tree has {n_levels} levels; give an "
                "integer or one rank per level, level 1 (children of the root) to level L (leaves)"
            )
    if any(r < 1 for r in ranks):
        raise ValueError(f"ranks {ranks} must all be >= 1")
    if n_levels and ranks[-1] > leaf_size:
        raise ValueError(
            f"rank {ranks[-1]} at the leaf level exceeds the leaf size {leaf_size}: a leaf basis "
            f"has at most as many columns as points; use rank <= {leaf_size} or a larger leaf_size"
        )
    return ranks
