"""DVC stage `finetune`: adapt the pretrained base to the target task, one run per strategy."""

from pipeline.paradigms.finetune import PARADIGM
from pipeline.paradigms.finetune.run import run_finetune
from pipeline.paradigms.repeats import over_seeds
from pipeline.paradigms.sanity import check_results
from pipeline.params import Params
from pipeline.stage import stage_entry
from pipeline.tracking.outputs import write_stage_metrics


@stage_entry
def main(params: Params) -> None:
    runs = over_seeds(run_finetune, params)
    check_results(PARADIGM, runs, params)
    write_stage_metrics(PARADIGM.stage, runs)


if __name__ == "__main__":
    main()
