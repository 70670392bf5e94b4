"""results: what a search produced, as one model read by the driver and by `minesearch report`.

`SearchResult` holds a search's parent run and every child run as a `TrialResult` (role, status,
recipe, last metrics, checkpoint); `rank` orders them on the search metric; `confirmations`
groups the test estimate's runs (new seeds, and the control's own run when the search did not
choose it) into mean ± 95% CI per recipe; `compare_to_best` tells which recipes,
scored on common random numbers, are indistinguishable from the best (paired t-test, Holm).
`minesearch.tracking.read_search` builds it from MLflow, so a search is read the same way while it
ends and years later.

Pure data and arithmetic: runs in the driver and the CLI; imports `config` and `recipe` (and
scipy for an interval or a test); never MLflow, Ray or torch.
"""

from minesearch.results._paired import ALPHA, PairedComparison, compare_to_best, holm
from minesearch.results._test_estimate import (
    SEED_OFFSET,
    Confirmation,
    confirmation_seeds,
    confirmations,
    estimate_of,
    mean_ci95,
    unchosen_control,
    unchosen_control_key,
    welch_half_width,
)
from minesearch.results._trials import (
    ROLES,
    SHOWN,
    STATUSES,
    Role,
    SearchResult,
    Status,
    TrialResult,
    rank,
    recipe_key,
    top_recipes,
)
from minesearch.results._verdict import (
    CANDIDATE,
    CONTROL_BETTER,
    FINE_TUNED_BETTER,
    PRETRAINED_BETTER,
    VERDICTS,
    Verdict,
    VerdictName,
    summary_line,
    verdict,
)

__all__ = [
    "ALPHA",
    "CANDIDATE",
    "CONTROL_BETTER",
    "FINE_TUNED_BETTER",
    "PRETRAINED_BETTER",
    "ROLES",
    "SEED_OFFSET",
    "SHOWN",
    "STATUSES",
    "VERDICTS",
    "Confirmation",
    "PairedComparison",
    "Role",
    "SearchResult",
    "Status",
    "TrialResult",
    "Verdict",
    "VerdictName",
    "compare_to_best",
    "confirmation_seeds",
    "confirmations",
    "estimate_of",
    "holm",
    "mean_ci95",
    "rank",
    "recipe_key",
    "summary_line",
    "top_recipes",
    "unchosen_control",
    "unchosen_control_key",
    "verdict",
    "welch_half_width",
]
