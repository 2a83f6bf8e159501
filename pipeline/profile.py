"""``python -m pipeline.profile PROFILE [--apply]``: a params profile on top of params.yaml.

A profile (e.g. ``params-gpu.yaml``) holds only the keys that differ. It is merged onto params.yaml and
checked against the schema first: a key the schema does not know, or a value it refuses, fails naming it. Then it
prints the ``dvc exp run -S ...`` line that tries the profile as a DVC experiment (a key params.yaml lacks is added,
``+key=value``), or with ``--apply`` writes the values into params.yaml, comments kept (the same writers as a
sweep's best params, :mod:`pipeline.config.edit`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pipeline.cli import ArgumentParser, cli_entry
from pipeline.config.edit import apply_to_params, exp_run_command, flatten, set_dotted
from pipeline.config.loading import read_yaml
from pipeline.errors import ConfigError
from pipeline.params import DEFAULT_PARAMS_FILE, parse_params


def profile_values(profile: Path, params_file: Path = DEFAULT_PARAMS_FILE) -> dict[str, Any]:
    """The profile's values by dotted key, once the params they make are known to be valid."""
    raw = read_yaml(profile)
    if not isinstance(raw, dict):
        raise ConfigError(f"{profile}: expected a mapping of params.yaml sections, got {type(raw).__name__}")
    values = flatten(raw)
    merged = copy.deepcopy(read_yaml(params_file))
    for key, value in values.items():
        set_dotted(merged, key, value)
    parse_params(merged, source=f"{params_file} with {profile}")
    return values


@cli_entry
def main() -> None:
    p = ArgumentParser(prog="python -m pipeline.profile", description=__doc__.split("\n\n")[0])
    p.add_argument("profile", type=Path, help="a params profile, e.g. params-gpu.yaml")
    p.add_argument("--params", type=Path, default=DEFAULT_PARAMS_FILE)
    p.add_argument("--apply", action="store_true", help="write the profile's values into the params file")
    args = p.parse_args()
    values = profile_values(args.profile, args.params)
    if args.apply:
        apply_to_params(args.params, values)
        written = f"{len(values)} value{'' if len(values) == 1 else 's'}"
        print(f"{args.params}: {written} from {args.profile} written; `dvc repro` runs the stages they change")
    else:
        print(exp_run_command(values, read_yaml(args.params)))


if __name__ == "__main__":
    main()
