"""The SVD adapters (lora_fa_svd, svd_diag) and PiSSA on tiny real models: the basis is torch's SVD and stays put,
the adapted model starts as the base, only what should train gets gradients, and save → reload → merge agree."""

from __future__ import annotations

import copy

import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.models.classifier import build_classifier
from pipeline.models.freezing import hold_frozen_norms
from pipeline.paradigms.finetune.adapters import add_adapters, load_adapted, merged_copy, save_adapter
from pipeline.paradigms.finetune.svd_diag import SvdDiagLinear
from tests.conftest import make_params

SHAPE = (1, 8, 8)
NEW = ("lora_fa_svd", "svd_diag", "pissa")


def setup(strategy: str = "svd_diag", **finetune):
    """Params with two body layers (64 → 32 → 16), a base in eval mode and an input batch."""
    params = make_params(model={"hidden_sizes": [32, 16]}, finetune=finetune)
    torch.manual_seed(0)
    base = build_classifier(params.model, SHAPE, 10).eval()
    return params, base, torch.randn(12, *SHAPE)


def adapted(strategy: str, **finetune):
    params, base, x = setup(strategy, **finetune)
    return params, base, add_adapters(copy.deepcopy(base), strategy, params.finetune, params.seed), x


def train_a_little(model: torch.nn.Module, x: torch.Tensor, steps: int = 5) -> None:
    """A few Adam steps on the trainable parameters, frozen BatchNorms held as training holds them."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    model.train()
    hold_frozen_norms(model)
    for _ in range(steps):
        optimizer.zero_grad()
        model(x).logsumexp(1).mean().backward()
        optimizer.step()
    model.eval()


def top(weight: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    u, _, vh = torch.linalg.svd(weight.detach().reshape(weight.shape[0], -1), full_matrices=False)
    return u[:, :r], vh[:r].T


def test_the_svd_basis_is_torch_s_top_singular_vectors_and_stays_frozen_through_training():
    params, base, fa, x = adapted("lora_fa_svd")
    _, _, diag, _ = adapted("svd_diag")
    r, r_diag = params.finetune.lora.r, params.finetune.svd_diag.r
    start = {k: v.clone() for k, v in fa.state_dict().items()} | {k: v.clone() for k, v in diag.state_dict().items()}
    train_a_little(fa, x)
    train_a_little(diag, x)
    for name in ("body.layer1.0", "body.layer2.0"):
        weight = base.get_submodule(name).weight
        b = fa.base_model.model.get_submodule(name).lora_B["default"].weight
        torch.testing.assert_close(b, top(weight, r)[0])
        assert not b.requires_grad and torch.equal(b, start[f"base_model.model.{name}.lora_B.default.weight"])
        a = f"base_model.model.{name}.lora_A.default.weight"
        assert not start[a].any() and fa.state_dict()[a].any()  # A trains from zero
        layer = diag.get_submodule(name)
        u, v = top(weight, r_diag)
        torch.testing.assert_close(layer.u, u), torch.testing.assert_close(layer.v, v)
        assert torch.equal(layer.u, start[f"{name}.u"]) and torch.equal(layer.v, start[f"{name}.v"])
        assert torch.equal(layer.base.weight, weight) and layer.d.abs().sum() > 0 and layer.s.abs().sum() > 0


@pytest.mark.parametrize("strategy", NEW)
def test_the_adapted_model_starts_as_the_base(strategy):
    _, base, model, x = adapted(strategy)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:, :10], base(x), rtol=1e-5, atol=1e-5)  # pissa: residual + B·A = W


def test_lora_fa_svd_covers_convolutions_with_a_one_by_one_basis():
    params = make_params(model={"backbone": "cnn", "channels": [4, 6]})
    torch.manual_seed(0)
    base = build_classifier(params.model, SHAPE, 10).eval()
    model = add_adapters(copy.deepcopy(base), "lora_fa_svd", params.finetune, params.seed).eval()
    conv = model.base_model.model.body.layer2[0]
    assert conv.lora_B["default"].weight.shape == (6, 2, 1, 1)
    torch.testing.assert_close(conv.lora_B["default"].weight.flatten(1), top(base.body.layer2[0].weight, 2)[0])
    x = torch.randn(4, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(model(x), base(x))


@pytest.mark.parametrize(
    ("strategy", "trainable"),
    [("svd_diag", (".d", ".s", "head.weight", "head.bias")), ("lora_fa_svd", ("lora_A.default.weight", "head."))],
)
def test_only_the_adapter_s_trainable_side_and_the_head_receive_gradients(strategy, trainable):
    _, _, model, x = adapted(strategy)
    model.train()
    hold_frozen_norms(model)
    model(x).logsumexp(1).mean().backward()
    got = {name for name, p in model.named_parameters() if p.grad is not None}
    assert got == {name for name, p in model.named_parameters() if p.requires_grad}
    assert got and all(name.endswith(trainable) or any(t in name for t in trainable) for name in got), got
    assert not any("lora_B" in name or "base" in name.removeprefix("base_model.model.") for name in got)


def test_svd_diag_trains_r_values_and_density_of_each_layer_s_entries():
    params, _, model, _ = adapted("svd_diag", svd_diag={"r": 3, "density": 0.05, "positions": "random"})
    layers = [m for m in model.modules() if isinstance(m, SvdDiagLinear)]
    assert [(m.d.numel(), m.s.numel()) for m in layers] == [(3, round(0.05 * 64 * 32)), (3, round(0.05 * 32 * 16))]
    assert all(not m.u.requires_grad and m.positions.dtype == torch.int64 for m in layers)
    again = add_adapters(setup()[1], "svd_diag", params.finetune, params.seed)
    assert torch.equal(layers[0].positions, again.body.layer1[0].positions)  # seeded from params.seed

    _, base, largest, _ = adapted("svd_diag", svd_diag={"r": 3, "density": 0.05})
    weight = base.body.layer1[0].weight.detach()
    u, s, vh = torch.linalg.svd(weight, full_matrices=False)
    residual = (weight - u[:, :3] @ torch.diag(s[:3]) @ vh[:3]).abs().flatten()
    picked = largest.body.layer1[0].positions
    assert residual[picked].min() >= residual.topk(picked.numel()).values.min()


@pytest.mark.parametrize("strategy", NEW)
def test_save_reload_and_merge_give_the_same_predictions(strategy, tmp_path):
    params, base, model, x = adapted(strategy)
    train_a_little(model, x)
    save_adapter(tmp_path / strategy, model, list(range(10)), SHAPE)
    reloaded = load_adapted(tmp_path / strategy, copy.deepcopy(base), params.model).eval()
    merged = merged_copy(model).eval()
    assert type(reloaded).__name__ == type(merged).__name__ == "Classifier"
    assert not any(isinstance(m, SvdDiagLinear) for m in merged.modules())
    with torch.no_grad():
        trained = model(x)
        torch.testing.assert_close(merged(x), trained, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(reloaded(x), trained, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(trained, base(x)[:, :10])
    if strategy == "svd_diag":  # d, S (values and positions) and the head: nothing of the base
        assert sorted(p.name for p in (tmp_path / strategy).iterdir()) == ["adapter_model.safetensors", "target.json"]
        assert (tmp_path / strategy / "adapter_model.safetensors").stat().st_size < 4 * 2000


def test_a_rank_too_large_or_a_density_out_of_range_is_one_line_naming_the_key():
    with pytest.raises(ConfigError, match=r"finetune.svd_diag.r = 20: larger than the 16 outputs of body.layer2") as e:
        make_params(model={"hidden_sizes": [32, 16]}, finetune={"svd_diag": {"r": 20}})
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"finetune.lora.r = 40: .*lora_fa_svd, pissa need a rank"):
        make_params(finetune={"lora": {"r": 40}})
    assert make_params(finetune={"lora": {"r": 40}, "strategies": ["lora"]}).finetune.lora.r == 40  # LoRA may
    for density in (0, 1.5):
        with pytest.raises(ConfigError, match=r"finetune.svd_diag.density") as e:
            make_params(finetune={"svd_diag": {"density": density}})
        assert "\n" not in str(e.value)
    # the input width is only known from the data: checked when the adapters are built
    params = make_params(finetune={"svd_diag": {"r": 6}, "lora": {"r": 6}})
    torch.manual_seed(0)
    for strategy, key in (("svd_diag", "finetune.svd_diag.r"), ("pissa", "finetune.lora.r")):
        with pytest.raises(ConfigError) as e:
            add_adapters(build_classifier(params.model, (1, 2, 2), 10), strategy, params.finetune, params.seed)
        assert str(e.value) == (
            f"{key} = 6: larger than the smaller dimension of body.layer1.0 (weight shape (32, 4), as a matrix 32x4); "
            "allowed 1..4"
        )
