"""Each question's winner in the MLflow Model Registry: ``<experiment>-<question>@champion``, set by the main run.

For every question the comparison answers (a section's :class:`~pipeline.reporting.headline.Champion`),
the winning run's MLflow Model (``runs:/<run id>/model``) becomes a version of the registered model
``<experiment>-<question>`` and an alias points at it. The committed workspace's main run moves :data:`CHAMPION`;
an experiment (``dvc exp run``, params.yaml or the data file not committed: :mod:`pipeline.tracking.workspace`)
moves :data:`CHALLENGER` instead and leaves the champion alone, so trying a learning rate or a dataset never
changes what ``models:/...@champion`` loads. :func:`promote_challengers` (``python -m pipeline.compare --promote``)
is the user's word that the challengers win.

An alias moves only when the winner changed: a comparison that picks the run the alias already names adds no
version, and a winner that was registered before (the alias moves back) gets its old version again. Versions carry
tags saying which question they won, by which rule (``chosen_by``: the headline's, on ``metric``), the comparison in
the report's words and how a tie within noise was broken (``tie_break``), brought up to date by every comparison
that picks them (an experiment's with :data:`EXPERIMENT_TAG`); the registered model's description says what
question it answers. An experiment that picks the champion's own run leaves it as it is and removes the challenger:
nothing is left to promote.

Load a champion anywhere with ``mlflow.pyfunc.load_model("models:/paradigm-lab-target-task@champion")``.
A store or server that cannot register models fails the stage with one line naming it
(``tracking.register: false`` turns registering off).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Iterator, Optional

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline.credentials import masked
from pipeline.errors import OutsideFault
from pipeline.failures import describe, refusal_status
from pipeline.reporting.headline import Champion
from pipeline.tracking.runs import MODEL_NAME

CHAMPION = "champion"  # the main run's winner: what the project answers
CHALLENGER = "challenger"  # an experiment's winner, until promoted
EXPERIMENT_TAG = "experiment"  # on an experiment's pick: why the comparison that picked it was an experiment
PROMOTE = "python -m pipeline.compare --promote"


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    champion: Champion
    moved: bool  # the alias now names another version than before
    alias: str = CHAMPION
    champion_version: Optional[str] = None  # a challenger's: the version @champion names (None: no champion yet)

    def line(self) -> str:
        change = f"new {self.alias}" if self.moved else "unchanged"
        line = f"{self.name}@{self.alias}: version {self.version}, {self.champion.label} ({change})"
        if self.alias == CHAMPION:
            return line
        if self.version == self.champion_version:  # the experiment agrees with the champion
            dropped = "; the earlier challenger removed" if self.moved else ""
            return (
                f"{self.name}@{CHALLENGER}: none, the experiment's winner is @{CHAMPION} (version {self.version}, "
                f"{self.champion.label}){dropped}"
            )
        held = f"version {self.champion_version}" if self.champion_version else "none yet"
        return f"{line}; @{CHAMPION} stays ({held}): `{PROMOTE}` makes it the champion"


def registered_name(experiment: str, question: str) -> str:
    return f"{experiment}-{question}"


def register_champions(
    client: MlflowClient,
    experiment: str,
    champions: list[Champion],
    compare_run_id: str,
    why_experiment: Optional[str] = None,
) -> list[Registered]:
    """Point each question's alias at its champion's model, registering it first if it is new: :data:`CHAMPION`
    for the main run, :data:`CHALLENGER` for an experiment (``why_experiment`` says why it is one)."""
    with _registry_faults("register the comparison's champions", ", or set tracking.register: false"):
        return [
            _register(client, registered_name(experiment, c.question), c, compare_run_id, why_experiment)
            for c in champions
        ]


def promote_challengers(client: MlflowClient, experiment: str) -> list[str]:
    """Point each question's :data:`CHAMPION` at the version its :data:`CHALLENGER` names and remove the
    challenger: the user's word that the experiment's winners are the answer. A line per question promoted."""
    lines = []
    with _registry_faults("promote the challengers"):
        for name in _registered_names(client, experiment):
            challenger = _alias_version(client, name, CHALLENGER)
            if challenger is None:
                continue
            before = _alias_version(client, name, CHAMPION)
            client.set_registered_model_alias(name, CHAMPION, challenger.version)
            client.delete_registered_model_alias(name, CHALLENGER)
            was = "none" if before is None else f"version {before.version}"
            label = challenger.tags.get("run", challenger.run_id)
            lines.append(
                f"{name}@{CHAMPION}: version {challenger.version}, {label} (promoted from @{CHALLENGER}; was {was})"
            )
    return lines or [f"nothing to promote: no registered model of experiment {experiment} has a @{CHALLENGER}"]


@contextlib.contextmanager
def _registry_faults(doing: str, or_else: str = "") -> Iterator[None]:
    """A registry that refuses or cannot register, in one line naming it; anything else is a bug and propagates."""
    try:
        yield
    except Exception as err:
        line = describe(err) or (str(err).splitlines()[0] if isinstance(err, MlflowException) else None)
        if line is None:
            raise
        if any(refusal_status(cause) for cause in (err, err.__cause__) if cause is not None):
            raise OutsideFault(line) from None  # who may register is the server's to grant: its line says so
        raise OutsideFault(
            f"the MLflow model registry {masked(mlflow.get_registry_uri())} cannot {doing} "
            f"({line}); point MLFLOW_REGISTRY_URI (or MLFLOW_TRACKING_URI) at a store with a model registry{or_else}"
        ) from None


def _register(
    client: MlflowClient, name: str, champion: Champion, compare_run_id: str, why_experiment: Optional[str]
) -> Registered:
    try:  # created first, not looked up first: a server with authentication hides a model nobody granted yet
        client.create_registered_model(name, description=champion.asks, tags={"question": champion.question})
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    alias = CHAMPION if why_experiment is None else CHALLENGER
    tags = _tags(champion, compare_run_id) | ({} if why_experiment is None else {EXPERIMENT_TAG: why_experiment})
    held = _alias_version(client, name, CHAMPION)
    held_version = None if held is None else held.version
    current = held if alias == CHAMPION else _alias_version(client, name, CHALLENGER)
    if alias == CHALLENGER and held is not None and held.run_id == champion.run_id:
        # The experiment agrees with the champion: nothing to promote, so no earlier challenger is left to promote
        # either; the champion's tags stay as the main run wrote them.
        if current is not None:
            client.delete_registered_model_alias(name, CHALLENGER)
        return Registered(name, held.version, champion, current is not None, alias, held_version)
    if current is not None and current.run_id == champion.run_id:
        _tag(client, current, tags)  # the same run, won again: say how it won this time
        return Registered(name, current.version, champion, False, alias, held_version)
    earlier = client.search_model_versions(f"name = '{name}' and run_id = '{champion.run_id}'")
    version = earlier[0] if earlier else _new_version(name, champion, tags)
    if earlier:
        _tag(client, version, tags)
    client.set_registered_model_alias(name, alias, version.version)
    return Registered(name, version.version, champion, True, alias, held_version)


def _registered_names(client: MlflowClient, experiment: str) -> Iterator[str]:
    """The registered models of ``experiment``'s questions (another experiment's ``<experiment>-v2-...`` is not)."""
    token = None
    while True:
        page = client.search_registered_models(f"name LIKE '{experiment}-%'", page_token=token)
        for model in page:
            if model.name == registered_name(experiment, model.tags.get("question", "")):
                yield model.name
        token = page.token
        if not token:
            return


def _alias_version(client: MlflowClient, name: str, alias: str):
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _tags(champion: Champion, compare_run_id: str) -> dict[str, str]:
    """How the version won: the question, the headline's rule and metric, the comparison, how a tie was broken."""
    return {
        "question": champion.question,
        "run": champion.label,
        "metric": champion.metric,
        "value": f"{champion.value:.4f}",
        "chosen_by": champion.chosen_by,
        "comparison": champion.standing[:5000],
        "tie_break": champion.tie_break[:5000],
        "compare_run_id": compare_run_id,
    }


def _tag(client: MlflowClient, version, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        if version.tags.get(key) != value:
            client.set_model_version_tag(version.name, version.version, key, value)
    if EXPERIMENT_TAG in version.tags and EXPERIMENT_TAG not in tags:  # the main run picked it now
        client.delete_model_version_tag(version.name, version.version, EXPERIMENT_TAG)


def _new_version(name: str, champion: Champion, tags: dict[str, str]):
    with contextlib.redirect_stderr(io.StringIO()):  # MLflow prints "Created version ...": the stage says it below
        return mlflow.register_model(f"runs:/{champion.run_id}/{MODEL_NAME}", name, tags=tags)
