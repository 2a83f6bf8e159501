"""Models: backbones with a named body and head, the Lightning module, base checkpoints."""
