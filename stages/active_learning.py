"""DVC stage `active_learning`: query strategies against labelling at random, round after round."""

from pipeline.paradigms.active_learning import PARADIGM
from pipeline.paradigms.active_learning.run import run_active_learning
from pipeline.paradigms.repeats import over_seeds
from pipeline.paradigms.sanity import check_results
from pipeline.params import Params
from pipeline.stage import stage_entry
from pipeline.tracking.outputs import write_stage_metrics


@stage_entry
def main(params: Params) -> None:
    runs = over_seeds(run_active_learning, params)
    check_results(PARADIGM, runs, params)
    write_stage_metrics(PARADIGM.stage, runs)


if __name__ == "__main__":
    main()
