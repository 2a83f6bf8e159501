"""Gradual unfreezing (as in ULMFiT): train the top layer first, then one more layer every few epochs.

Built on Lightning's ``BaseFinetuning``: each layer that thaws joins the optimizer as a new
parameter group, so it gets optimizer state only from then on.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn

from pipeline.errors import ConfigError


class GradualUnfreezing(BaseFinetuning):
    def __init__(self, layers_top_down: list[nn.Module], every_n_epochs: int, lr: float):
        """``layers_top_down[0]`` trains from the start; layer k thaws at epoch k × ``every_n_epochs`` with ``lr``."""
        super().__init__()
        self.layers = layers_top_down
        self.every = every_n_epochs
        self.lr = lr

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.world_size > 1:  # DDP syncs only the gradients of weights that trained from the start
            raise ConfigError(
                f"finetune.unfreeze_every = {self.every}: gradual unfreezing needs one device, but this fit runs "
                f"{trainer.world_size} processes; set finetune.trainer.devices to 1 or finetune.unfreeze_every to null"
            )
        if stage == "fit":  # not again for testing: the thawed layers stay thawed (and are counted as trainable)
            super().setup(trainer, pl_module, stage)

    def freeze_before_training(self, pl_module) -> None:
        self.freeze(self.layers[1:], train_bn=False)

    def finetune_function(self, pl_module, epoch: int, optimizer) -> None:
        if epoch and epoch % self.every == 0 and epoch // self.every < len(self.layers):
            layer = self.layers[epoch // self.every]
            self.unfreeze_and_add_param_group(layer, optimizer, lr=self.lr, train_bn=True)
            layer.train()  # its normalisation statistics, held while frozen, now learn too
