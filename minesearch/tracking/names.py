"""Every MLflow name minesearch writes and reads: tags, parameter and metric prefixes, artifacts.

The search writes them, `minesearch report` and `minesearch export` read them, possibly years
later: one spelling each, here, so that renaming one cannot silently break a reader.
"""

from __future__ import annotations

# --- tags ----------------------------------------------------------------------------------------
SEARCH_TAG = "minesearch.search"  # "parent" on a search's parent run
TRIAL_TAG = "minesearch.trial_id"  # a child run's Tune trial id
ROLE_TAG = "minesearch.role"  # a child run's role: trial, control or confirm (results.ROLES)
CONTROL_TAG = "minesearch.control"  # "true" on the searched trial that trained the control recipe
RECIPE_TAG = "minesearch.recipe"  # a child run's exact recipe, as JSON
SAMPLER_PARAMS_TAG = "minesearch.sampler_params"  # a searched trial's Optuna params, as JSON
STORAGE_TAG = "minesearch.storage"  # on the parent: the search's Ray storage path
CHECKPOINT_TAG = "minesearch.checkpoint"  # a child run's selected epoch's checkpoint (storage)
INTERRUPTED_TAG = "minesearch.interrupted"  # an interrupted search or trial; cleared on resume
STOPPED_TAG = "minesearch.stopped"  # a FINISHED child run that the scheduler stopped early
ERROR_TAG = "minesearch.error"  # a FAILED child run's reason
ORPHAN_TAG = "minesearch.orphan"  # a child run deleted on resume, with why
BEST_TAG = "best.trial_id"  # on the parent, when the search finishes: its best trial
CHOSEN_TAG = "rerun.chosen_trial_id"  # on the parent: the trial the paired re-runs chose
VERDICT_TAG = "minesearch.verdict"  # on the parent: results.VERDICTS (which answer to keep)
PARENT_VALUE = "parent"  # SEARCH_TAG's value

# --- params of a child run (`tracking.recipe_params`, `tracking.trial_params`) --------------------
LOSS_PARAM = "loss"  # the PML loss class
MINER_PARAM = "miner"  # the PML miner class, or "none"
LR_PARAM = "lr"
LOSS_PARAM_PREFIX = "loss."  # the loss's own parameters: loss.margin, loss.neg_margin, ...
MINER_PARAM_PREFIX = "miner."  # the miner's: miner.margin, miner.type_of_triplets, ...
MARGIN = "margin"  # the knob both may have: loss.margin and miner.margin are different ones
TRIPLETS_PARAM = f"{MINER_PARAM_PREFIX}type_of_triplets"  # TripletMarginMiner's choice
MARGIN_MODE_PARAM = "margin_mode"  # tied, separate, default or none (recipe.MarginMode)
TUPLES_PARAM = "tuples"  # native or converted: what the loss does with the miner's tuples
SEED_PARAM = "seed"  # the trial's seed (re-runs and confirmations differ by it)
# a metric every epoch's report logs: a resumed trial's last epoch is its last step
EVERY_EPOCH_METRIC = "precision_at_1"

# --- params and tags of the parent run ------------------------------------------------------------
METRIC_PARAM = "metric"  # the search's metric (config.vocab.Metric)
MODE_PARAM = "mode"  # max or min
CLUSTER_TAGS = ("cluster.cpus", "cluster.gpus")  # what the search's Ray held when it started
CONCURRENT_TAG = "concurrent"  # trials side by side

# --- parameter and metric prefixes on the parent run ---------------------------------------------
BEST_PREFIX = "best."  # the best trial's recipe (params) and scores (metrics)
EPOCH0_PREFIX = "best.epoch0."  # the best trial's scores before training
CONTROL_PREFIX = "control."  # the control's scores
RERUN_PREFIX = "rerun."  # rerun.<i>.recipe (tag), .mean, .p_worse; rerun.units, .indistinguishable
CONFIRM_PREFIX = "confirm."  # confirm.<rank>.test.<metric>.mean / .ci95, confirm.<rank>.seeds
CONTROL_ESTIMATE = "confirm.control"  # the control's test estimate, as confirm.<rank>
PRETRAINED_PREFIX = "pretrained."  # the pretrained model's scores: <metric>, test.<metric>
VERDICT_MARGIN = "verdict.margin"  # chosen recipe minus pretrained on the verdict's evidence
VERDICT_CONTROL_MARGIN = "verdict.control_margin"  # chosen recipe minus the control, likewise

# --- artifacts -----------------------------------------------------------------------------------
SPEC_ARTIFACT = "resolved_spec.json"  # on the parent: the validated space, every default filled
TRIAL_CONFIG_ARTIFACT = "trial_config.json"  # on a child: the Tune config the trial received
REPORT_DIR = "report"  # on the parent: the report's plots and leaderboard
LEADERBOARD_ARTIFACT = f"{REPORT_DIR}/leaderboard.txt"
EXPORT_DIR = "export"  # on a child: export/<format>/ with the model and preprocess.json

# --- the MLflow Model of a search's best (minesearch.tracking.log_model) -------------------------
MODEL_NAME = "model"  # the pyfunc model's name on the run: runs:/<run id>/model
MODEL_EXPORT_KEY = "export"  # the pyfunc's artifact: the TorchScript export directory
