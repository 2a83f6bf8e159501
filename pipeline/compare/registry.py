"""Each question's winner in the MLflow Model Registry: ``<experiment>-<question>@champion``.

For every question the comparison answers (a section's :class:`~pipeline.reporting.headline.Champion`),
the winning run's MLflow Model (``runs:/<run id>/model``) becomes a version of the registered model
``<experiment>-<question>`` and the alias :data:`ALIAS` points at it. The alias moves only when the
winner changed: a comparison that picks the run the alias already names adds no version, and a winner
that was registered before (the alias moves back) gets its old version again. Versions carry tags
saying which question they won, by which rule (``chosen_by``: the headline's, on ``metric``), the comparison in
the report's words and how a tie within noise was broken (``tie_break``), brought up to date by every comparison
that picks them; the registered model's description says what question it answers.

Load a champion anywhere with ``mlflow.pyfunc.load_model("models:/paradigm-lab-target-task@champion")``.
A store or server that cannot register models fails the stage with one line naming it
(``tracking.register: false`` turns registering off).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline.credentials import masked
from pipeline.errors import OutsideFault
from pipeline.failures import describe, refusal_status
from pipeline.reporting.headline import Champion
from pipeline.tracking.runs import MODEL_NAME

ALIAS = "champion"


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    champion: Champion
    moved: bool  # the alias now names another version than before

    def line(self) -> str:
        change = "new champion" if self.moved else "unchanged"
        return f"{self.name}@{ALIAS}: version {self.version}, {self.champion.label} ({change})"


def registered_name(experiment: str, question: str) -> str:
    return f"{experiment}-{question}"


def register_champions(
    client: MlflowClient, experiment: str, champions: list[Champion], compare_run_id: str
) -> list[Registered]:
    """Point each question's :data:`ALIAS` at its champion's model, registering it first if it is new."""
    try:
        return [_register(client, registered_name(experiment, c.question), c, compare_run_id) for c in champions]
    except Exception as err:
        line = describe(err) or (str(err).splitlines()[0] if isinstance(err, MlflowException) else None)
        if line is None:
            raise
        if any(refusal_status(cause) for cause in (err, err.__cause__) if cause is not None):
            raise OutsideFault(line) from None  # who may register is the server's to grant: its line says so
        raise OutsideFault(
            f"the MLflow model registry {masked(mlflow.get_registry_uri())} cannot register the comparison's champions "
            f"({line}); point MLFLOW_REGISTRY_URI (or MLFLOW_TRACKING_URI) at a store with a model registry, or "
            "set tracking.register: false"
        ) from None


def _register(client: MlflowClient, name: str, champion: Champion, compare_run_id: str) -> Registered:
    try:  # created first, not looked up first: a server with authentication hides a model nobody granted yet
        client.create_registered_model(name, description=champion.asks, tags={"question": champion.question})
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    current = _alias_version(client, name)
    if current is not None and current.run_id == champion.run_id:
        _tag(client, current, champion, compare_run_id)  # the same run, won again: say how it won this time
        return Registered(name, current.version, champion, moved=False)
    earlier = client.search_model_versions(f"name = '{name}' and run_id = '{champion.run_id}'")
    version = earlier[0] if earlier else _new_version(name, champion, compare_run_id)
    if earlier:
        _tag(client, version, champion, compare_run_id)
    client.set_registered_model_alias(name, ALIAS, version.version)
    return Registered(name, version.version, champion, moved=True)


def _alias_version(client: MlflowClient, name: str):
    try:
        return client.get_model_version_by_alias(name, ALIAS)
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


def _tag(client: MlflowClient, version, champion: Champion, compare_run_id: str) -> None:
    for key, value in _tags(champion, compare_run_id).items():
        if version.tags.get(key) != value:
            client.set_model_version_tag(version.name, version.version, key, value)


def _new_version(name: str, champion: Champion, compare_run_id: str):
    with contextlib.redirect_stderr(io.StringIO()):  # MLflow prints "Created version ...": the stage says it below
        return mlflow.register_model(
            f"runs:/{champion.run_id}/{MODEL_NAME}", name, tags=_tags(champion, compare_run_id)
        )
