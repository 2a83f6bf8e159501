"""``svd_diag``: W = A·D·Bᵀ + E from the notes, read so that the pretrained model stays intact.

Each linear layer of the body becomes W + U_r·diag(d)·V_rᵀ + S: W frozen, U_r and V_r the top-r left and right
singular vectors of W (fixed buffers), d (r values) trainable from 0, and S a sparse residual at fixed positions
whose values train from 0. At the start the adapted model computes exactly the base's function; it trains
r + density·(out·in) values per layer, and merges back into a plain ``nn.Linear``.

Positions of S: ``largest``, the entries where W differs most from its rank-r part U_r·Σ_r·V_rᵀ (where a rank-r
view of W is worst); or ``random``, drawn from one generator seeded with ``params.seed``.

Saved apart from the base: d, S's values and positions and the new head. U_r and V_r are recomputed from the
base on reload (an SVD's sign ambiguity flips u_i and v_i together, which leaves u_i·d_i·v_iᵀ unchanged).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.classifier import Classifier
from pipeline.models.freezing import freeze_all_but
from pipeline.paradigms.finetune.config import SvdDiagSettings
from pipeline.paradigms.finetune.svd_basis import check_rank, top_singular, weight_matrix

HEAD = "head"


class SvdDiagLinear(nn.Module):
    """A frozen ``nn.Linear`` plus U·diag(d)·Vᵀ + S; only ``d`` and ``s`` (S's values) are parameters."""

    def __init__(self, base: nn.Linear, u: torch.Tensor, v: torch.Tensor, positions: torch.Tensor):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.register_buffer("u", u)
        self.register_buffer("v", v)
        self.register_buffer("positions", positions)  # flat indices into the (out × in) weight
        self.d = nn.Parameter(torch.zeros(u.shape[1], dtype=base.weight.dtype))
        self.s = nn.Parameter(torch.zeros(positions.numel(), dtype=base.weight.dtype))

    def delta(self) -> torch.Tensor:
        """U·diag(d)·Vᵀ + S as a dense (out × in) matrix: layers this small gain nothing from sparse kernels."""
        weight = self.base.weight
        sparse = torch.zeros(weight.numel(), dtype=weight.dtype, device=weight.device).scatter(
            0, self.positions, self.s
        )
        return (self.u * self.d) @ self.v.T + sparse.view_as(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.base.weight + self.delta(), self.base.bias)

    def merged(self) -> nn.Linear:
        layer = copy.deepcopy(self.base)
        with torch.no_grad():
            layer.weight += self.delta()
        return layer


def sparse_positions(layer: nn.Linear, cfg: SvdDiagSettings, generator: torch.Generator) -> torch.Tensor:
    """Where S may be non-zero: density × out·in flat indices (at least one), sorted."""
    weight = weight_matrix(layer)
    count = max(1, round(cfg.density * weight.numel()))
    if cfg.positions == "random":
        chosen = torch.randperm(weight.numel(), generator=generator)[:count]
    else:
        u, s, v = top_singular(layer, cfg.r)
        chosen = (weight - (u * s) @ v.T).abs().flatten().topk(count).indices
    return chosen.sort().values


def add_svd_diag(model: Classifier, targets: list[str], cfg: SvdDiagSettings, seed: int) -> Classifier:
    """Freeze ``model`` but its head and wrap each layer in ``targets`` (the body's linear layers)."""
    layers = {name: model.get_submodule(name) for name in targets}
    check_rank(layers, cfg.r, "finetune.svd_diag.r")
    freeze_all_but(model, [model.get_submodule(HEAD)])
    generator = torch.Generator().manual_seed(seed)
    for name, layer in layers.items():
        u, _, v = top_singular(layer, cfg.r)
        model.set_submodule(name, SvdDiagLinear(layer, u, v, sparse_positions(layer, cfg, generator)))
    return model


def svd_diag_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """What the adapted model adds to the base: each layer's d, S's values and positions, and the head."""
    state = {f"{HEAD}.{k}": v for k, v in model.get_submodule(HEAD).state_dict().items()}
    for name, module in model.named_modules():
        if isinstance(module, SvdDiagLinear):
            state |= {f"{name}.d": module.d, f"{name}.s": module.s, f"{name}.positions": module.positions}
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def load_svd_diag(base: Classifier, state: dict[str, torch.Tensor]) -> Classifier:
    """``base`` (with a head of the right size) rebuilt around a saved :func:`svd_diag_state`."""
    base.get_submodule(HEAD).load_state_dict(
        {k.removeprefix(f"{HEAD}."): v for k, v in state.items() if k.startswith(f"{HEAD}.")}
    )
    freeze_all_but(base, [base.get_submodule(HEAD)])
    for name in [k.removesuffix(".d") for k in state if k.endswith(".d")]:
        layer = base.get_submodule(name)
        u, _, v = top_singular(layer, len(state[f"{name}.d"]))
        wrapped = SvdDiagLinear(layer, u, v, state[f"{name}.positions"])
        with torch.no_grad():
            wrapped.d.copy_(state[f"{name}.d"]), wrapped.s.copy_(state[f"{name}.s"])
        base.set_submodule(name, wrapped)
    return base


def merge_svd_diag(model: nn.Module) -> nn.Module:
    """``model`` with every :class:`SvdDiagLinear` replaced by its merged plain ``nn.Linear`` (in place)."""
    for name, module in list(model.named_modules()):
        if isinstance(module, SvdDiagLinear):
            model.set_submodule(name, module.merged())
    return model
