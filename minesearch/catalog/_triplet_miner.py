"""PML's TripletMarginMiner, mined one block of (anchor, positive) pairs at a time.

PML 2.9's miner enumerates every (a, p, n) of the batch with a B x B x B mask: at B=1024 one call
takes +1.2 GB and 2 s on CPU, and past B ~ 1290 (B^3 > 2**31) it falls back to a Python loop over
anchors. The triplets worth keeping are decided per (a, p) pair, though: with m = d(a, n) - d(a, p)
(PML's distance; p - n for a similarity), a triplet is mined when

    all: m <= margin    hard: m <= 0    semihard: 0 < m <= margin    easy: m > margin

so this miner takes the positive pairs in PML's order and, a block at a time (`chunk_elements`
pairs x references), compares each pair's d(a, p) with its anchor's row of distances, by the same
float subtraction as PML: working memory is O(B^2) (the distance matrix and label masks) plus a
block, plus the output. A first pass counts each block's triplets, a second writes them into the
output, allocated once. The triplets are PML's, in PML's order (anchor, then positive, then
negative ascending), as int64 on the labels' device (PML's loop path gives anchors the labels'
dtype); `ref_emb`/`ref_labels`, the distance and the statistics (`pos_pair_dist`,
`neg_pair_dist`, `avg_triplet_margin`: means over every valid triplet, computed here from pair
sums, NaN when there is none) behave as PML's. An unknown `type_of_triplets` raises (PML mines
"all").

The output itself can be the problem: with "all" (or "hard"/"semihard" early in training) the
count grows as B^3 (B=2048, 8 per class: 29M triplets, 0.7 GB of indices, and several times that
in the loss). So `max_triplets` (default 2**22, ~100 MB of indices) caps it: when more triplets
qualify, that many are drawn uniformly without replacement (in PML's order), the first capped call
of a miner logs a warning, and `num_triplets_before_cap` records the count (a PML stat). A loss
averaging over its triplets then averages over a uniform sample of millions of them: an unbiased
estimate of a mean over all (and a ratio estimate of TripletMarginLoss's mean over the non-zero
ones). `max_triplets=None` gives PML's output whatever its size.

Built by the catalog (`build_miner("TripletMarginMiner", ...)`); torch and PML are imported here,
and the catalog imports this module only when the class is asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from pytorch_metric_learning import miners
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from minesearch.catalog._entries import TRIPLET_TYPES

LOGGER = logging.getLogger(__name__)
MAX_TRIPLETS = 2**22
# (pairs x reference rows) compared at once: ~10 MB of working tensors, and as many triplets
# found at once; smaller blocks cost Python overhead (B=2048: 2 x 113 blocks), larger ones memory.
CHUNK_ELEMENTS = 2**18

Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class TripletMarginMiner(miners.TripletMarginMiner):
    """PML's ``TripletMarginMiner`` (same arguments, output and stats) in bounded memory."""

    def __init__(
        self,
        margin: float = 0.2,
        type_of_triplets: str = "all",
        max_triplets: int | None = MAX_TRIPLETS,
        chunk_elements: int = CHUNK_ELEMENTS,
        **kwargs: Any,
    ) -> None:
        if type_of_triplets not in TRIPLET_TYPES:  # PML would silently mine "all"
            raise ValueError(
                f"type_of_triplets must be one of {list(TRIPLET_TYPES)}, got {type_of_triplets!r}"
            )
        if max_triplets is not None and max_triplets < 1:
            raise ValueError(f"max_triplets must be positive or None, got {max_triplets}")
        if chunk_elements < 1:
            raise ValueError(f"chunk_elements must be positive, got {chunk_elements}")
        super().__init__(margin=margin, type_of_triplets=type_of_triplets, **kwargs)
        self.max_triplets = max_triplets
        self.chunk_elements = chunk_elements
        self._warned_cap = False
        self.add_to_recordable_attributes(name="num_triplets_before_cap", is_stat=True)

    def mine(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor,
        ref_labels: torch.Tensor,
    ) -> Triplets:
        mat = self.distance(embeddings, ref_emb)  # (B, R)
        # uint8 (B, R); (a, a) is no positive pair when the reference is the batch itself.
        matches, diffs = lmu.get_matches_and_diffs(labels, ref_labels)
        anchors, positives = torch.where(matches)  # (P,) each, by anchor then positive
        if self.collect_stats:
            self._record_stats(mat, matches, diffs)
        blocks = [(anchors[s], positives[s]) for s in self._blocks(len(anchors), mat.shape[1])]
        counts = [int(self._mined(mat, labels, ref_labels, a, p).sum()) for a, p in blocks]
        if self.collect_stats:
            self.num_triplets_before_cap = sum(counts)
        takes, rng = self._takes(counts, len(anchors), mat.shape[1])
        out = [torch.empty(sum(takes), dtype=torch.long, device=matches.device) for _ in range(3)]
        filled = 0
        for (a, p), count, take in zip(blocks, counts, takes, strict=True):  # second pass
            if take == 0:
                continue
            pair, negative = torch.where(self._mined(mat, labels, ref_labels, a, p))  # (count,)
            if rng is not None and take < count:  # ascending positions: PML's order is kept
                kept = np.sort(rng.choice(count, take, replace=False))  # (take,)
                pair, negative = pair[kept], negative[kept]
            out[0][filled : filled + take] = a[pair]
            out[1][filled : filled + take] = p[pair]
            out[2][filled : filled + take] = negative
            filled += take
        return out[0], out[1], out[2]

    def _takes(
        self, counts: list[int], pairs: int, num_ref: int
    ) -> tuple[list[int], np.random.Generator | None]:
        """How many triplets each block keeps: all of them, or under the cap a uniform sample
        without replacement, split among the blocks by a multivariate hypergeometric draw (the
        generator then picks which, block by block). Seeded from torch's RNG, so that
        torch.manual_seed repeats it."""
        if self.max_triplets is None or sum(counts) <= self.max_triplets:
            return counts, None
        self._warn_cap(sum(counts), pairs, num_ref)
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,))))
        takes = rng.multivariate_hypergeometric(counts, self.max_triplets, method="marginals")
        return takes.tolist(), rng

    def _blocks(self, num_pairs: int, num_ref: int) -> Iterator[slice]:
        step = max(1, self.chunk_elements // max(1, num_ref))
        for start in range(0, num_pairs, step):
            yield slice(start, start + step)

    def _mined(
        self,
        mat: torch.Tensor,
        labels: torch.Tensor,
        ref_labels: torch.Tensor,
        anchors: torch.Tensor,
        positives: torch.Tensor,
    ) -> torch.Tensor:
        """(pairs, R) bool: the negatives each (a, p) pair of the block mines.

        The margin is the same float subtraction of the same matrix entries as PML's, so a
        triplet on the threshold falls on the same side.
        """
        ap = mat[anchors, positives][:, None]  # (b, 1)
        an = mat[anchors]  # (b, R)
        margin = ap - an if self.distance.is_inverted else an - ap  # (b, R)
        if self.type_of_triplets == "easy":
            mined = margin > self.margin
        else:
            mined = margin <= self.margin
            if self.type_of_triplets == "hard":
                mined &= margin <= 0
            elif self.type_of_triplets == "semihard":
                mined &= margin > 0
        return mined & (labels[anchors][:, None] != ref_labels[None, :])  # n of another class

    def _warn_cap(self, total: int, pairs: int, num_ref: int) -> None:
        if self._warned_cap:
            return
        self._warned_cap = True
        LOGGER.warning(
            "TripletMarginMiner(%s): %d triplets qualify (%d positive pairs x %d references); "
            "a uniform sample of max_triplets=%d is used (logged once per miner)",
            self.type_of_triplets,
            total,
            pairs,
            num_ref,
            self.max_triplets,
        )

    def _record_stats(self, mat: torch.Tensor, matches: torch.Tensor, diffs: torch.Tensor) -> None:
        """PML's means over every valid triplet, from pair sums: (a, p) appears once per negative
        of a, (a, n) once per positive of a. NaN when there is no triplet, as PML's mean."""
        positives_of = matches.sum(dim=1, dtype=torch.float64)  # (B,)
        negatives_of = diffs.sum(dim=1, dtype=torch.float64)  # (B,)
        count = float((positives_of * negatives_of).sum())
        ap_sum = ((mat * matches).sum(dim=1, dtype=torch.float64) * negatives_of).sum()
        an_sum = ((mat * diffs).sum(dim=1, dtype=torch.float64) * positives_of).sum()
        pos = float(ap_sum) / count if count else float("nan")
        neg = float(an_sum) / count if count else float("nan")
        self.pos_pair_dist = pos
        self.neg_pair_dist = neg
        self.avg_triplet_margin = pos - neg if self.distance.is_inverted else neg - pos
