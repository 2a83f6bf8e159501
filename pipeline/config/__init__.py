"""params.yaml: typed schema and loading with one-line errors."""

from pipeline.config.loading import load_params, parse_params
from pipeline.config.schema import Params, TrainerConfig

__all__ = ["Params", "TrainerConfig", "load_params", "parse_params"]
