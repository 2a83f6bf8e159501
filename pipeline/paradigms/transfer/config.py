"""The ``transfer`` params section, and how it must fit the backbone."""

from __future__ import annotations

from pydantic import Field

from pipeline.config.schema import SharedParams, StageSection


class TransferConfig(StageSection):
    """New top layers on a frozen pretrained body."""

    replace_layers: int = Field(1, ge=1)  # counted from the top: 1 = the head only


def check_transfer(params: SharedParams) -> None:
    depth, backbone, replace = params.model.depth, params.model.backbone, params.transfer.replace_layers
    if replace >= depth:
        raise ValueError(
            f"transfer.replace_layers = {replace}: the {backbone} backbone has {depth} layers "
            "(head included) and at least one must stay frozen (replacing all is the scratch stage); allowed "
            f"1..{depth - 1}"
        )
