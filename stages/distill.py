"""DVC stage `distill`: a teacher, a small student on labels alone, and the same student distilled from the teacher."""

from pipeline.paradigms.distill import PARADIGM
from pipeline.paradigms.distill.run import run_distill
from pipeline.paradigms.repeats import over_seeds
from pipeline.paradigms.sanity import check_results
from pipeline.params import Params
from pipeline.stage import stage_entry
from pipeline.tracking.outputs import write_stage_metrics


@stage_entry
def main(params: Params) -> None:
    runs = over_seeds(run_distill, params)
    check_results(PARADIGM, runs, params)
    write_stage_metrics(PARADIGM.stage, runs)


if __name__ == "__main__":
    main()
