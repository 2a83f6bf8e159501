"""Transfer, fine-tuning and the scratch control on tiny models and a real MLflow store.

Mechanics only, never which paradigm wins: what is frozen stays bit-identical, what should
train changes, adapters save apart and merge back, a wrong base checkpoint is refused.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

from pipeline.compare.sources import fetch_predictions
from pipeline.config.schema import ModelConfig
from pipeline.data.prepared import load_task
from pipeline.errors import ConfigError, DataError
from pipeline.models.checkpoint import load_classifier
from pipeline.models.reuse import load_base_for, renew_top_layers
from pipeline.paradigms.finetune.adapters import add_adapters, load_adapted
from pipeline.paradigms.finetune.run import run_finetune
from pipeline.paradigms.pretrain.run import run_pretrain
from pipeline.paradigms.scratch.run import run_scratch
from pipeline.paradigms.transfer.run import run_transfer
from pipeline.seeding import seed_everything
from pipeline.tracking.contract import CONTRACT_METRICS as CONTRACT
from tests.conftest import deep_merge, make_params, pretrained_workspace, stage_paths

TINY_TARGET = {"prepare": {"shots_per_class": 3}, "trainer": {"max_epochs": 3, "batch_size": 16}}


def tiny(**overrides):
    return make_params(**deep_merge(TINY_TARGET, overrides))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Prepared data and a pretrained base, shared by the module; each test writes its own outputs."""
    params = tiny()
    with pretrained_workspace(tmp_path_factory.mktemp("target"), params) as root:
        yield params, root


def checkpoint(root):
    return stage_paths("pretrain", root).base


def target(root):
    return stage_paths("transfer", root).prepared("target")


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_transfer_keeps_the_body_bit_identical_and_trains_a_new_head(base):
    params, root = base
    runs = run_transfer(params, stage_paths("transfer", root, "t1"))
    before, _ = load_classifier(checkpoint(root), params.model)
    after, payload = load_classifier(root / "t1" / "models" / "model.pt", params.model)
    pretrained, trained = state(before), state(after)
    body = [k for k in trained if k.startswith("body.")]
    assert body and any("running_mean" in k for k in body)  # normalisation statistics are checked too
    for key in body:
        assert torch.equal(trained[key], pretrained[key]), key
    assert payload["classes"] == list(range(10))
    seed_everything(params.seed)
    fresh = renew_top_layers(before, params.model, tuple(payload["input_shape"]), 10, ["head"])
    assert not torch.equal(trained["head.weight"], fresh.head.weight)  # the new head learnt

    entry = runs["frozen_body"]
    assert entry["params/trainable"] == 32 * 10 + 10 < entry["params/total"]
    assert entry["memory/optimizer_bytes"] == 2 * 4 * entry["params/trainable"]  # Adam state for the head only
    run = MlflowClient().get_run(entry["run_id"])
    assert set(CONTRACT) <= set(run.data.metrics)
    assert (run.data.tags["stage"], run.data.tags["paradigm"], run.data.tags["variant"]) == (
        "transfer",
        "transfer",
        "frozen_body",
    )
    assert run.data.tags["trained_modules"] == "head"


def test_transfer_can_replace_the_top_body_layer_too(base):
    _, root = base
    params = tiny(model={"hidden_sizes": [32, 16]}, transfer={"replace_layers": 2})
    run_pretrain(params, stage_paths("pretrain", root, "t2-base"))
    runs = run_transfer(params, stage_paths("transfer", root, "t2", base=root / "t2-base" / "models" / "base.pt"))
    before, _ = load_classifier(root / "t2-base" / "models" / "base.pt", params.model)
    after, _ = load_classifier(root / "t2" / "models" / "model.pt", params.model)
    assert torch.equal(after.body.layer1[0].weight, before.body.layer1[0].weight)
    assert not torch.equal(after.body.layer2[0].weight, before.body.layer2[0].weight)
    assert runs["frozen_body"]["params/trainable"] == (32 * 16 + 16 + 2 * 16) + (16 * 10 + 10)


def test_partial_trains_exactly_the_layers_it_names(base):
    _, root = base
    params = tiny(model={"hidden_sizes": [32, 16]}, finetune={"strategies": ["partial"], "unfreeze_layers": 2})
    run_pretrain(params, stage_paths("pretrain", root, "p-base"))
    runs = run_finetune(params, stage_paths("finetune", root, "p", base=root / "p-base" / "models" / "base.pt"))
    before, _ = load_classifier(root / "p-base" / "models" / "base.pt", params.model)
    after, _ = load_classifier(root / "p" / "models" / "partial.pt", params.model)
    old, new = state(before), state(after)
    assert all(torch.equal(new[k], old[k]) for k in new if k.startswith("body.layer1."))
    assert all(not torch.equal(new[k], old[k]) for k in new if k.startswith("body.layer2.") and "num_batches" not in k)
    assert (
        MlflowClient().get_run(runs["partial"]["run_id"]).data.tags["trained_modules"]
        == "body.layer2.0,body.layer2.1,head"
    )


def test_gradual_unfreezing_thaws_one_layer_at_a_time(base):
    params, root = base
    params = tiny(finetune={"strategies": ["partial"], "unfreeze_layers": 2, "unfreeze_every": 2})
    out = root / "g"
    first = run_finetune(
        params.model_copy(update={"trainer": params.trainer.model_copy(update={"max_epochs": 2})}),
        stage_paths("finetune", root, "g/two"),
    )
    later = run_finetune(params, stage_paths("finetune", root, "g/three"))
    pretrained = state(load_classifier(checkpoint(root), params.model)[0])
    after_two = state(load_classifier(out / "two" / "models" / "partial.pt", params.model)[0])
    after_three = state(load_classifier(out / "three" / "models" / "partial.pt", params.model)[0])
    layer = [k for k in pretrained if k.startswith("body.layer1.0.")]
    assert all(torch.equal(after_two[k], pretrained[k]) for k in layer)  # epochs 1-2: the head alone
    assert not torch.equal(after_three["body.layer1.0.weight"], pretrained["body.layer1.0.weight"])  # thawed at epoch 3
    assert first["partial"]["params/trainable"] < later["partial"]["params/trainable"]


def test_lora_fa_keeps_a_frozen_and_trains_b_and_the_adapters_merge(base):
    params, root = base
    params = tiny(finetune={"strategies": ["lora", "lora_fa"]})
    runs = run_finetune(params, stage_paths("finetune", root, "fa"))
    task = load_task(target(root))

    # the adapter as it was before training, built the way the stage builds it
    initial = load_base_for(task, checkpoint(root), params.model)
    seed_everything(params.seed)
    renew_top_layers(initial, params.model, task.input_shape, task.num_classes, ["head"])
    initial = add_adapters(initial, "lora_fa", params.finetune, params.seed).state_dict()
    saved = load_file(root / "fa" / "models" / "lora_fa" / "adapter_model.safetensors")
    a_keys, b_keys = [k for k in saved if "lora_A" in k], [k for k in saved if "lora_B" in k]
    assert a_keys and b_keys
    by_name = {k.replace(".default", ""): v for k, v in initial.items()}
    for key in a_keys:
        assert torch.equal(saved[key], by_name[key]), key
    for key in b_keys:
        assert not torch.equal(saved[key], by_name[key]), key
    client = MlflowClient()
    assert client.get_run(runs["lora_fa"]["run_id"]).data.tags["optimizer"] == "LoraFAOptimizer"
    assert client.get_run(runs["lora"]["run_id"]).data.tags["optimizer"] == "Adam"
    assert runs["lora_fa"]["params/trainable"] < runs["lora"]["params/trainable"]
    assert runs["lora_fa"]["memory/optimizer_bytes"] < runs["lora"]["memory/optimizer_bytes"]

    x = torch.from_numpy(task.X["test"][:32])
    unmerged = load_adapted(
        root / "fa" / "models" / "lora", load_base_for(task, checkpoint(root), params.model), params.model, merge=False
    )
    merged = load_adapted(
        root / "fa" / "models" / "lora", load_base_for(task, checkpoint(root), params.model), params.model
    )
    unmerged.eval(), merged.eval()
    assert type(merged).__name__ == "Classifier"
    with torch.no_grad():
        torch.testing.assert_close(merged(x), unmerged(x), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(unmerged(x), load_base_for(task, checkpoint(root), params.model).eval()(x)[:, :10])


def test_the_svd_adapters_and_pissa_train_fewer_parameters_than_full_and_reload_merged(base):
    params, root = base
    params = tiny(finetune={"strategies": ["full", "lora_fa_svd", "svd_diag", "pissa"]})
    runs = run_finetune(params, stage_paths("finetune", root, "svd"))
    head = 32 * 10 + 10
    assert runs["lora_fa_svd"]["params/trainable"] == head + 2 * 64  # lora_A (r × in) trains, lora_B = U_r is fixed
    assert runs["svd_diag"]["params/trainable"] == head + 4 + round(0.01 * 64 * 32)  # d (r) and S's values
    assert runs["pissa"]["params/trainable"] == head + 2 * (64 + 32)
    client = MlflowClient()
    for strategy in ("lora_fa_svd", "svd_diag", "pissa"):
        assert runs[strategy]["params/trainable"] < runs["full"]["params/trainable"], strategy
        run = client.get_run(runs[strategy]["run_id"])
        assert run.info.status == "FINISHED" and set(CONTRACT) <= set(run.data.metrics), strategy
        assert run.data.tags["optimizer"] == "Adam", strategy

    task = load_task(target(root))
    x = torch.as_tensor(task.X["test"][:16])
    with torch.no_grad():
        reference = load_base_for(task, checkpoint(root), params.model).eval()(x)
        for strategy in ("lora_fa_svd", "svd_diag", "pissa"):
            pretrained = load_base_for(task, checkpoint(root), params.model)
            merged = load_adapted(root / "svd" / "models" / strategy, pretrained, params.model)
            assert type(merged).__name__ == "Classifier" and merged.eval()(x).shape == (16, 10), strategy
            assert not torch.allclose(merged(x), reference[:, :10]), strategy


def test_adapters_train_under_a_tenth_of_full_on_the_default_backbone():
    params = make_params(model=ModelConfig().model_dump())  # the schema's default backbone, not the tiny one
    from pipeline.memory import estimate_training_memory
    from pipeline.models.classifier import build_classifier
    from pipeline.paradigms.finetune.adapters import lora_fa_optimizer
    from pipeline.training.optimizers import build_optimizer

    full = build_classifier(params.model, (1, 8, 8), 10)
    full_estimate = estimate_training_memory(full, build_optimizer(full.parameters(), params.trainer), "32")
    for strategy in ("lora", "lora_fa", "vera", "lora_fa_svd", "svd_diag", "pissa"):
        model = add_adapters(build_classifier(params.model, (1, 8, 8), 10), strategy, params.finetune, params.seed)
        optimizer = (
            lora_fa_optimizer(params.finetune)(model, params.trainer)
            if strategy == "lora_fa"
            else build_optimizer(model.parameters(), params.trainer)
        )
        estimate = estimate_training_memory(model, optimizer, "32")
        assert estimate.trainable_params < 0.1 * full_estimate.trainable_params, strategy
        assert estimate.optimizer_bytes < 0.1 * full_estimate.optimizer_bytes, strategy

    def lora_trainable(r: int) -> int:
        cfg = params.finetune.model_copy(update={"lora": params.finetune.lora.model_copy(update={"r": r})})
        model = add_adapters(build_classifier(params.model, (1, 8, 8), 10), "lora", cfg, params.seed)
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    assert lora_trainable(8) - lora_trainable(2) == 6 * ((64 + 128) + (128 + 128))  # r × (in + out) per adapted layer


def test_every_variant_is_tested_on_the_same_target_split_and_tracked(base):
    """Each variant's run logs the target file's test split as its testing dataset (same digest) and its test
    answers are for exactly that split's examples, in order.

    Catches: one variant (scratch) tested on another split of the target data (its validation split).
    """
    _, root = base
    params = tiny(finetune={"unfreeze_layers": 1})
    runs = run_finetune(params, stage_paths("finetune", root, "all"))
    runs |= run_scratch(params, stage_paths("scratch", root, "all-scratch"))
    assert set(runs) == {"full", "partial", "lora", "lora_fa", "vera", "lora_fa_svd", "svd_diag", "pissa", "scratch"}
    client = MlflowClient()
    for variant, entry in runs.items():
        run = client.get_run(entry["run_id"])
        assert run.info.status == "FINISHED" and run.data.tags["variant"] == variant
        assert set(CONTRACT) <= set(run.data.metrics), variant
    assert runs["scratch"]["params/trainable"] == runs["full"]["params/trainable"] == runs["full"]["params/total"]
    head = 32 * 10 + 10
    assert runs["partial"]["params/trainable"] == head  # unfreeze_layers 1: the head
    assert runs["lora"]["params/trainable"] == head + 2 * (64 + 32)  # r × (in + out) on the body's one linear layer
    task = load_task(target(root))
    digest = mlflow.data.from_numpy(task.X["test"], targets=task.y["test"]).digest  # MLflow's, of the arrays alone
    assert len(task.y["test"]) > 0 and len(set(task.y["test"].tolist())) > 1
    for variant, entry in runs.items():
        inputs = client.get_run(entry["run_id"]).inputs.dataset_inputs
        testing = [i.dataset for i in inputs if {t.key: t.value for t in i.tags}["mlflow.data.context"] == "testing"]
        assert [(d.name, d.digest) for d in testing] == [("target/test", digest)], variant
        (true, predicted), *others = fetch_predictions(client, entry["run_id"]).values()
        assert not others and np.array_equal(true, task.y["test"]) and len(predicted) == len(true), variant
    confusion = {v: client.list_artifacts(e["run_id"], "plots") for v, e in runs.items()}
    assert all(any(a.path.endswith("confusion_matrix.png") for a in arts) for arts in confusion.values())
    history = (root / "all" / "plots" / "history.csv").read_text().splitlines()
    assert history[0] == "variant,epoch,train/loss,val/loss,val/acc" and len(history) == 1 + 8 * 3
    assert sorted(p.name for p in (root / "all" / "models").iterdir()) == [
        "full.pt",
        "lora",
        "lora_fa",
        "lora_fa_svd",
        "partial.pt",
        "pissa",
        "svd_diag",
        "vera",
    ]


def test_lora_adapts_convolutions_of_the_cnn_backbone(base):
    _, root = base
    params = tiny(model={"backbone": "cnn"}, finetune={"strategies": ["lora"]}, trainer={"max_epochs": 1})
    run_pretrain(params, stage_paths("pretrain", root, "cnn-base"))
    runs = run_finetune(params, stage_paths("finetune", root, "cnn", base=root / "cnn-base" / "models" / "base.pt"))
    trained = MlflowClient().get_run(runs["lora"]["run_id"]).data.tags["trained_modules"]
    assert "body.layer1.0.lora_A.default" in trained and "head.modules_to_save.default" in trained


def test_a_missing_or_mismatched_base_checkpoint_is_refused_naming_both(base):
    params, root = base
    with pytest.raises(DataError, match=r"absent\.pt: checkpoint not found; run `dvc repro pretrain` first"):
        run_transfer(params, stage_paths("transfer", root, "x", base=root / "absent.pt"))
    other = tiny(model={"hidden_sizes": [64, 64]})
    with pytest.raises(
        ConfigError, match=r"built with model hidden_sizes=\[32\], but params.yaml names model hidden_sizes=\[64, 64\]"
    ):
        run_finetune(other, stage_paths("finetune", root, "x"))
    assert not (root / "x").exists()  # nothing written


def test_depth_rules_are_checked_when_params_load():
    with pytest.raises(ConfigError, match=r"transfer.replace_layers = 2: the mlp backbone has 2 layers .*allowed 1..1"):
        make_params(transfer={"replace_layers": 2})
    with pytest.raises(ConfigError, match=r"finetune.unfreeze_layers = 3: .* allowed 1..2"):
        make_params(finetune={"unfreeze_layers": 3})
    with pytest.raises(ConfigError, match="includes 'vera', which adapt only linear layers"):
        make_params(model={"backbone": "cnn"}, finetune={"strategies": ["lora", "vera"]})
    with pytest.raises(ConfigError, match="includes 'lora_fa', which adapt only linear layers .* the resnet backbone"):
        make_params(model={"backbone": "resnet"}, finetune={"strategies": ["lora_fa"]})
    cnn = ["full", "partial", "lora", "lora_fa_svd"]  # LoRA-FA with an SVD basis covers convolutions too
    assert make_params(model={"backbone": "cnn"}).finetune.strategies_for("cnn") == cnn
    assert make_params().finetune.strategies_for("mlp") == [
        "full",
        "partial",
        "lora",
        "lora_fa",
        "vera",
        "lora_fa_svd",
        "svd_diag",
        "pissa",
    ]
    with pytest.raises(ConfigError, match="includes 'svd_diag', 'pissa', which adapt only linear layers"):
        make_params(model={"backbone": "cnn"}, finetune={"strategies": ["svd_diag", "pissa", "lora_fa_svd"]})
    with pytest.raises(ConfigError, match=r"finetune.strategies = \['lora', 'lora'\]: each strategy at most once"):
        make_params(finetune={"strategies": ["lora", "lora"]})
    with pytest.raises(ConfigError, match=r"finetune.strategies\[0\] = 'qlora': must be 'full', 'partial'"):
        make_params(finetune={"strategies": ["qlora"]})


def test_full_finetuning_can_give_the_body_a_lower_learning_rate():
    from pipeline.models.classifier import build_classifier
    from pipeline.training.optimizers import with_body_lr_factor

    params = tiny(finetune={"body_lr_factor": 0.1})
    model = build_classifier(params.model, (1, 8, 8), 10)
    optimizer = with_body_lr_factor(params.finetune.body_lr_factor)(model, params.trainer)
    sizes = {group["lr"]: sum(p.numel() for p in group["params"]) for group in optimizer.param_groups}
    head = 32 * 10 + 10
    body = sum(p.numel() for p in model.parameters()) - head
    assert sorted(sizes.items()) == [(pytest.approx(1e-4), body), (pytest.approx(1e-3), head)]


def test_a_base_for_other_inputs_or_a_folder_that_is_no_adapter_is_refused(base):
    from pipeline.models.checkpoint import save_classifier
    from pipeline.models.classifier import build_classifier

    params, root = base
    other_inputs = root / "other" / "base.pt"
    save_classifier(
        other_inputs, build_classifier(params.model, (1, 4, 4), 10), params.model, (1, 4, 4), list(range(10))
    )
    with pytest.raises(DataError, match=r"takes inputs of shape \(1, 4, 4\), this stage's data has \(1, 8, 8\)") as err:
        run_transfer(params, stage_paths("transfer", root, "other", base=other_inputs))
    assert "\n" not in str(err.value)
    task = load_task(target(root))
    with pytest.raises(DataError, match="not a saved adapter"):
        load_adapted(root / "other", load_base_for(task, checkpoint(root), params.model), params.model)
