"""DVC stage `multitask`: one shared-body multi-task model against one separate model per task."""

from pipeline.paradigms.multitask import PARADIGM
from pipeline.paradigms.multitask.run import run_multitask
from pipeline.paradigms.repeats import over_seeds
from pipeline.paradigms.sanity import check_results
from pipeline.params import Params
from pipeline.stage import stage_entry
from pipeline.tracking.outputs import write_stage_metrics


@stage_entry
def main(params: Params) -> None:
    runs = over_seeds(run_multitask, params)
    check_results(PARADIGM, runs, params)
    write_stage_metrics(PARADIGM.stage, runs)


if __name__ == "__main__":
    main()
