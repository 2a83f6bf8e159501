"""DVC stage `scratch`: the control, the same architecture trained from random initialisation on the target task."""

from pipeline.paradigms.repeats import over_seeds
from pipeline.paradigms.sanity import check_results
from pipeline.paradigms.scratch import PARADIGM
from pipeline.paradigms.scratch.run import run_scratch
from pipeline.params import Params
from pipeline.stage import stage_entry
from pipeline.tracking.outputs import write_stage_metrics


@stage_entry
def main(params: Params) -> None:
    runs = over_seeds(run_scratch, params)
    check_results(PARADIGM, runs, params)
    write_stage_metrics(PARADIGM.stage, runs)


if __name__ == "__main__":
    main()
