"""Training memory: estimated from the parameters, and measured during fit."""

from pipeline.memory.estimate import MemoryEstimate, estimate_training_memory
from pipeline.memory.measure import PeakMemory, model_state_bytes

__all__ = ["MemoryEstimate", "PeakMemory", "estimate_training_memory", "model_state_bytes"]
