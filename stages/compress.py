"""DVC stage `compress`: distill's teacher pruned, quantised to int8 and halved to fp16, beside the original."""

from pipeline.paradigms.compress import PARADIGM
from pipeline.paradigms.compress.run import run_compress
from pipeline.paradigms.repeats import over_seeds
from pipeline.paradigms.sanity import check_results
from pipeline.params import Params
from pipeline.stage import stage_entry
from pipeline.tracking.outputs import write_stage_metrics


@stage_entry
def main(params: Params) -> None:
    runs = over_seeds(run_compress, params)
    check_results(PARADIGM, runs, params)
    write_stage_metrics(PARADIGM.stage, runs)


if __name__ == "__main__":
    main()
