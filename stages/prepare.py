"""DVC stage `prepare`: load the dataset and write every split later stages use."""

from pipeline.data.prepare import prepare_data, write_prepared
from pipeline.params import Params
from pipeline.paths import PREPARED_DIR
from pipeline.stage import stage_entry
from pipeline.tracking.outputs import write_stage_metrics
from pipeline.tracking.prepared_data import SPEC, log_prepared
from pipeline.tracking.runs import stage_run


@stage_entry
def main(params: Params) -> None:
    prepared = prepare_data(params)
    with stage_run(params, SPEC) as run:
        write_prepared(prepared, PREPARED_DIR)
        metrics = log_prepared(prepared)
    write_stage_metrics(SPEC.stage, {SPEC.variant: {"run_id": run.info.run_id, **metrics}})


if __name__ == "__main__":
    main()
