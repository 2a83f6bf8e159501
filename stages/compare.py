"""DVC stage `compare`: every paradigm's runs side by side, in a report, in DVC and in MLflow."""

from pipeline.compare.run import run_compare, write_champions
from pipeline.params import Params
from pipeline.stage import stage_entry


@stage_entry
def main(params: Params) -> None:
    write_champions(run_compare(params))


if __name__ == "__main__":
    main()
