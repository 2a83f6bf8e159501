"""DVC stage `compare`: every paradigm's runs side by side, in a report, in DVC and in MLflow."""

from pipeline.compare.run import STAGE, run_compare
from pipeline.io import write_json
from pipeline.params import Params
from pipeline.paths import metrics_file
from pipeline.stage import stage_entry


@stage_entry
def main(params: Params) -> None:
    write_json(metrics_file(STAGE), {"stage": STAGE, **run_compare(params)})


if __name__ == "__main__":
    main()
