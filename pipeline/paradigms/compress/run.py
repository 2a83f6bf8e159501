"""The ``compress`` stage: distill's teacher made smaller for production, one run per compression.

- ``reference``: the teacher as it is (scored and timed here, so every ratio compares like with like);
- ``prune-<s>``: global magnitude pruning to sparsity ``s`` (:mod:`.pruning`), then a short fine-tune with
  the zeros held (this section's trainer options), saved with its zeros packed away (a bit mask and the
  non-zero values: :func:`pipeline.models.checkpoint.pack_sparse`), so its file shrinks with them;
- ``int8``: dynamic int8 linear layers (:mod:`.precision`), saved as int8, run on the CPU;
- ``fp16``: half-precision weights and activations, saved as fp16.

Each variant logs ``compress/acc_drop`` (the reference's test accuracy minus its own) and its size, latency and
throughput ratios to the reference (``compress/size_ratio`` ...). A pruned model is stored dense in memory
(zeros in place): it runs no faster unless the hardware has sparse kernels, which the timings show.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import torch

from pipeline.config.schema import SharedParams, TrainerConfig
from pipeline.data.prepared import TaskData, load_task
from pipeline.deployment.cost import NONZERO_METRIC, SIZE_METRIC, relative_cost
from pipeline.deployment.inference import LATENCY_P50, THROUGHPUT
from pipeline.io import atomic_dir
from pipeline.models.checkpoint import load_classifier, save_classifier
from pipeline.models.classifier import Classifier
from pipeline.paradigms.compress import PARADIGM
from pipeline.paradigms.compress.config import prune_variant
from pipeline.paradigms.compress.evaluated import evaluated_run
from pipeline.paradigms.compress.precision import HalfPrecision, dequantized, quantize_int8, save_int8
from pipeline.paradigms.compress.pruning import permanent, prune_globally, sparsity
from pipeline.paradigms.fitted import train_classifier
from pipeline.paths import StagePaths
from pipeline.seeding import seed_everything
from pipeline.tracking.contract import Metrics, SavedModel
from pipeline.tracking.outputs import write_csv

PREFIX = "compress"  # each variant's metrics against the reference: compress/acc_drop, compress/size_ratio, ...
PLOTTED = ("test/acc", "compress/acc_drop", SIZE_METRIC, NONZERO_METRIC, LATENCY_P50, THROUGHPUT)
CPU = torch.device("cpu")


def run_compress(params: SharedParams, paths: StagePaths = StagePaths.of(PARADIGM.stage)) -> dict[str, dict]:
    """Every compression of the teacher in turn; the models folder appears once all of them are saved."""
    task = load_task(paths.prepared(PARADIGM.task))
    teacher, _ = load_classifier(paths.teacher, params.model, "distill")
    cfg, model_cfg = params.compress, params.model
    device = scoring_device(params.trainer_for(PARADIGM.stage))
    labels = len(task.y["train"]) + len(task.y["val"])  # the teacher's: what every variant's knowledge comes from
    runs: dict[str, dict] = {}

    def against_reference(metrics: Metrics) -> Metrics:
        return relative_cost(metrics, runs["reference"], PREFIX)

    with atomic_dir(paths.models) as out:
        runs["reference"] = evaluated_run(
            params,
            PARADIGM.run_spec("reference"),
            lambda: copy.deepcopy(teacher),
            task,
            lambda net: SavedModel.classifier(out / "reference.pt", net, model_cfg, task),
            device,
            "32",
            labels,
        )
        for share in cfg.sparsities:
            runs[prune_variant(share)] = _pruned(params, teacher, share, task, out, against_reference)
        if cfg.int8_for(model_cfg.backbone):
            runs["int8"] = evaluated_run(
                params,
                PARADIGM.run_spec("int8"),
                lambda: quantize_int8(teacher),
                task,
                lambda net: SavedModel(
                    out / "int8.pt",
                    lambda at: save_int8(at, net, model_cfg, task.input_shape, task.classes),
                    lambda: net,
                    exported=lambda: dequantized(net, teacher),
                ),
                CPU,  # dynamic int8 kernels are CPU kernels
                "int8",
                labels,
                against_reference,
            )
        if cfg.fp16:
            runs["fp16"] = evaluated_run(
                params,
                PARADIGM.run_spec("fp16"),
                lambda: HalfPrecision(teacher),
                task,
                lambda net: SavedModel(
                    out / "fp16.pt",
                    lambda at: save_classifier(at, net.network, model_cfg, task.input_shape, task.classes),
                    lambda: net,
                ),
                device,
                "16-true",
                labels,
                against_reference,
            )
    write_csv(paths.plots / "variants.csv", [{"variant": v, **{k: e.get(k) for k in PLOTTED}} for v, e in runs.items()])
    return runs


def _pruned(params: SharedParams, teacher: Classifier, share: float, task: TaskData, out: Path, against) -> dict:
    """The teacher pruned to ``share`` of zeros, fine-tuned with them held, saved packed."""
    seed_everything(params.seed)
    model = prune_globally(copy.deepcopy(teacher), share)
    folded = functools.cache(lambda: permanent(model))  # once, after training: saved, timed and measured alike
    saved = SavedModel(
        out / f"{prune_variant(share)}.pt",
        lambda at: save_classifier(at, folded(), params.model, task.input_shape, task.classes, sparse=True),
        folded,
    )
    entry, _ = train_classifier(
        params,
        PARADIGM.run_spec(prune_variant(share)),
        model,
        task,
        saved,
        derived=lambda metrics: against(metrics) | {f"{PREFIX}/sparsity": sparsity(folded())},
    )
    return entry


def scoring_device(cfg: TrainerConfig) -> torch.device:
    """Where the models compressed after training are scored and timed: the first GPU the trainer options allow,
    else the CPU."""
    if cfg.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", cfg.devices[0] if isinstance(cfg.devices, list) else 0)
    return CPU
