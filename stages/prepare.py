"""DVC stage `prepare`: load the dataset and write every split later stages use."""

from pipeline.data.prepare import prepare_data, write_prepared
from pipeline.io import write_json
from pipeline.params import Params
from pipeline.paths import PREPARE_METRICS, PREPARED_DIR
from pipeline.stage import stage_entry
from pipeline.tracking.prepared_data import SPEC, headline, log_prepared
from pipeline.tracking.runs import stage_run


@stage_entry
def main(params: Params) -> None:
    prepared = prepare_data(params)
    with stage_run(params, SPEC) as run:
        write_prepared(prepared, PREPARED_DIR)
        metrics = log_prepared(prepared)
    write_json(PREPARE_METRICS, headline(metrics, run.info.run_id))


if __name__ == "__main__":
    main()
