"""What the steps of one search share, explicitly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from minesearch.config import SpaceSpec, is_uri
from minesearch.recipe import Recipe, Setting, control_recipe
from minesearch.search._progress import ViewCallback, tell
from minesearch.search._trial import TrialSetup
from minesearch.search._view import Header, ViewMode
from minesearch.tracking import ParentRun


@dataclass(frozen=True)
class Search:
    """What the steps of one search share."""

    setup: TrialSetup  # the space (devices resolved) and the Ray storage
    name: str  # the Tune experiment's name: <space name>-<timestamp>
    tracking_uri: str
    parent: ParentRun
    at_once: int  # trials side by side
    setting: Setting = "scratch"  # what is tuned: it picks the control (`recipe.control_recipe`)
    view_mode: ViewMode | None = None  # how the user sees the search; None: not at all

    def view(self, title: str, total: int, header: Header | None = None) -> ViewCallback:
        """The user's view of a Tune run of this search (trials, control, confirmations)."""
        spec = self.spec
        return ViewCallback(
            title, spec.search.metric, total, spec.train.epochs, header, self.view_mode
        )

    def tell(self, text: str) -> None:
        """A message for the user, with the view (`_progress.tell`)."""
        tell(self.view_mode, text)

    @property
    def spec(self) -> SpaceSpec:
        return self.setup.spec

    @property
    def control(self) -> Recipe:
        """The practitioner's recipe for this model, the bar the search is weighed against."""
        return control_recipe(self.spec, self.setting)

    @property
    def directory(self) -> Path | None:
        return search_directory(self.setup.storage_path, self.name)


def search_directory(storage: str, name: str) -> Path | None:
    """A search's directory in local (or NFS) storage (its Tune state, log, report and export);
    None for s3://, gs://, ..."""
    return None if is_uri(storage) else Path(storage) / name
