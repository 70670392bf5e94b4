"""PML 2.9.0's `get_matches_and_diffs` (bench/gpu_stubs/README.md)."""

from __future__ import annotations

import torch


def get_matches_and_diffs(
    labels: torch.Tensor, ref_labels: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (B, R) same-label and other-label masks; no (a, a) pair when the reference is the
    batch itself."""
    if ref_labels is None:
        ref_labels = labels
    matches = (labels.unsqueeze(1) == ref_labels.unsqueeze(0)).byte()
    diffs = matches ^ 1
    if ref_labels is labels:
        matches.fill_diagonal_(0)
    return matches, diffs
