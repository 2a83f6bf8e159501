"""What a stage writes for DVC, ``metrics/<stage>/<variant>.json``, and how the comparison reads its run ids back."""

from __future__ import annotations

import json
import re

import pytest

from pipeline.compare.sources import ListedRun, listed_runs
from pipeline.errors import DataError, UserError
from pipeline.tracking.outputs import write_stage_metrics


def run(run_id: str, acc: float, **metrics: float) -> dict:
    """A variant's entry as a stage's run returns it: its run id and every metric it logged."""
    logged = {"params/trainable": 1000, "memory/estimated_train_bytes": 2_345_678, "model/size_bytes": 40_960}
    logged |= {"test/f1_macro": acc - 0.01, "time/fit_seconds": 1.23456, "test/loss": 0.5}
    return {"run_id": run_id, "test/acc": acc, **logged, **metrics}


def files(folder) -> dict[str, dict]:
    return {path.relative_to(folder).as_posix(): json.loads(path.read_text()) for path in folder.rglob("*.json")}


def test_a_variant_holds_the_mean_over_its_seeds_of_a_few_numbers_and_its_runs_own_seed_first(tmp_path):
    runs = {  # the extra seeds' runs may come first: the variant's own seed is still listed first
        "lora@seed43": run("b" * 32, 0.9, **{"time/fit_seconds": 2.0}),
        "lora": run("a" * 32, 0.81234),
        "lora@seed44": run("c" * 32, 0.7),
        "dirichlet/fedavg": {"run_id": "d" * 32, "test/acc": 0.5, "comm/bytes_total": 1e6},
    }
    folder = write_stage_metrics("stage", runs, tmp_path)
    assert folder == tmp_path / "stage"
    written = files(folder)
    assert set(written) == {"lora.json", "dirichlet/fedavg.json"}
    lora = written["lora.json"]
    assert lora.pop("run_ids") == ["a" * 32, "b" * 32, "c" * 32]
    assert lora == {
        "acc": 0.8041,  # (0.81234 + 0.9 + 0.7) / 3, to 4 decimals
        "acc_std": 0.1003,
        "f1": 0.7941,
        "trainable": 1000,
        "train_mb": 2.346,  # 2,345,678 bytes: 4 significant digits
        "size_kb": 40.96,
        "fit_s": 1.49,  # (1.23456 + 2.0 + 1.23456) / 3
    }
    # one seed: no spread; only what the run logged
    assert written["dirichlet/fedavg.json"] == {"acc": 0.5, "run_ids": ["d" * 32]}


def test_the_folder_is_replaced_whole_so_a_vanished_variant_leaves_no_file(tmp_path):
    write_stage_metrics(
        "federated", {"iid/fedavg": run("a" * 32, 0.8), "dirichlet/fedavg": run("b" * 32, 0.7)}, tmp_path
    )
    write_stage_metrics("federated", {"iid/fedavg": run("c" * 32, 0.9)}, tmp_path)
    assert files(tmp_path / "federated") == {"iid/fedavg.json": files(tmp_path / "federated")["iid/fedavg.json"]}
    assert not (tmp_path / "federated" / "dirichlet").exists()
    assert [item.run_id for item in listed_runs(tmp_path, ("federated",))[0]] == ["c" * 32]


def test_a_stage_with_nothing_to_run_writes_why_and_no_runs(tmp_path):
    write_stage_metrics("multitask", {"multitask": run("a" * 32, 0.8)}, tmp_path)
    write_stage_metrics("multitask", {}, tmp_path, skipped="one task on this data")
    assert files(tmp_path / "multitask") == {"skipped.json": {"run_ids": [], "skipped": ["one task on this data"]}}
    assert listed_runs(tmp_path, ("multitask",)) == ([], {"multitask": "one task on this data"})


def test_a_variant_name_that_would_leave_the_stages_folder_is_refused(tmp_path):
    write_stage_metrics("scratch", {"scratch": run("a" * 32, 0.8)}, tmp_path)
    with pytest.raises(ValueError, match="variant '../escape'"):
        write_stage_metrics("scratch", {"../escape": run("b" * 32, 0.8)}, tmp_path)
    assert set(files(tmp_path / "scratch")) == {"scratch.json"}  # the folder as it was
    assert not (tmp_path / "escape.json").exists()


def test_the_comparison_reads_every_variants_runs_and_names_a_file_it_cannot(tmp_path):
    write_stage_metrics("scratch", {"scratch": run("a" * 32, 0.8), "scratch@seed43": run("b" * 32, 0.7)}, tmp_path)
    write_stage_metrics("finetune", {"full": run("c" * 32, 0.8), "lora": run("d" * 32, 0.7)}, tmp_path)
    listed, skipped = listed_runs(tmp_path, ("scratch", "finetune"))
    assert skipped == {}
    assert listed == [
        ListedRun("scratch", "scratch", "a" * 32),
        ListedRun("scratch", "scratch", "b" * 32),
        ListedRun("finetune", "full", "c" * 32),
        ListedRun("finetune", "lora", "d" * 32),
    ]
    missing = re.escape(f"stage 'transfer' has no {tmp_path / 'transfer'}; run `dvc repro transfer` first")
    with pytest.raises(UserError, match=missing):
        listed_runs(tmp_path, ("transfer",))
    lora = tmp_path / "finetune" / "lora.json"
    for broken in ("{not json", "[1, 2]", '{"acc": 0.7}', '{"run_ids": []}', '{"run_ids": [""]}'):
        lora.write_text(broken)
        with pytest.raises(DataError, match=f"{re.escape(str(lora))}: .*re-run `dvc repro --force finetune`"):
            listed_runs(tmp_path, ("finetune",))
    for path in (tmp_path / "finetune").iterdir():
        path.unlink()
    with pytest.raises(DataError, match="finetune: lists no runs"):
        listed_runs(tmp_path, ("finetune",))
