"""DVC stage `federated`: federated clients against centralised training on the pooled data."""

from pipeline.config import load_params
from pipeline.paradigms.federated import STAGE, run_federated
from pipeline.paradigms.repeats import over_seeds
from pipeline.stage import stage_entry
from pipeline.tracking.outputs import write_stage_metrics


@stage_entry
def main() -> None:
    params = load_params()
    write_stage_metrics(STAGE, over_seeds(run_federated, params))


if __name__ == "__main__":
    main()
