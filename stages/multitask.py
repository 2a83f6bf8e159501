"""DVC stage `multitask`: one shared-body multi-task model against one separate model per task."""

from pipeline.paradigms.multitask import PARADIGM
from pipeline.paradigms.multitask.run import NothingToCompare, run_multitask, write_nothing_to_compare
from pipeline.paradigms.repeats import over_seeds
from pipeline.paradigms.sanity import check_results
from pipeline.params import Params
from pipeline.stage import stage_entry
from pipeline.tracking.outputs import write_stage_metrics


@stage_entry
def main(params: Params) -> None:
    try:
        runs = over_seeds(run_multitask, params)
    except NothingToCompare as nothing:  # one task on this data (two classes: parity is the class)
        write_nothing_to_compare(str(nothing))
        write_stage_metrics(PARADIGM.stage, {}, skipped=str(nothing))
        return
    check_results(PARADIGM, runs, params)
    write_stage_metrics(PARADIGM.stage, runs)


if __name__ == "__main__":
    main()
