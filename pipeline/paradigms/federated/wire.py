"""What travels between server and clients: flat tensors as raw bytes, and update compression.

Both sides know the model's layout, so a message is the tensors' bytes and nothing else, and
the bytes counted are exactly the bytes sent. The server sends the global model (float32);
a client sends its update through a codec:

- ``none``: its new weights, float32 (lossless);
- ``fp16``: its change (new - global) in half precision;
- ``int8``: its change quantised to int8 with one float32 scale per tensor;
- ``topk``: the largest ``topk_fraction`` of its change by magnitude, as int32 positions and float32 values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pipeline.paradigms.federated.layout import StateLayout

Part = tuple[torch.dtype, int]  # one tensor of a message: its dtype and length


def to_bytes(parts: list[torch.Tensor]) -> bytes:
    return b"".join(p.detach().contiguous().cpu().numpy().tobytes() for p in parts)


def message_bytes(kinds: list[Part]) -> int:
    return sum(n * torch.empty((), dtype=dtype).element_size() for dtype, n in kinds)


def from_bytes(blob: bytes, kinds: list[Part]) -> list[torch.Tensor]:
    """The tensors of a message; anything but a message of exactly this layout is refused."""
    if not isinstance(blob, (bytes, bytearray)):
        raise TypeError(f"a message is bytes, got {type(blob).__name__}")
    expected = message_bytes(kinds)
    if len(blob) != expected:
        raise ValueError(f"a message of {len(blob)} bytes; this layout's messages are {expected} bytes")
    buffer, parts, offset = bytearray(blob), [], 0
    for dtype, n in kinds:
        parts.append(torch.frombuffer(buffer, dtype=dtype, count=n, offset=offset))
        offset += n * parts[-1].element_size()
    return parts


@dataclass(frozen=True)
class Codec:
    """Encodes a client's new weights against the global weights it started from, and back."""

    name: str
    layout: StateLayout
    topk_fraction: float = 0.1

    @property
    def lossy(self) -> bool:
        return self.name != "none"

    @property
    def topk(self) -> int:
        return max(1, math.ceil(self.topk_fraction * self.layout.numel))

    def kinds(self) -> list[Part]:
        n = self.layout.numel
        return {
            "none": [(torch.float32, n)],
            "fp16": [(torch.float16, n)],
            "int8": [(torch.float32, len(self.layout.sizes)), (torch.int8, n)],
            "topk": [(torch.int32, self.topk), (torch.float32, self.topk)],
        }[self.name]

    def encode(self, local: torch.Tensor, start: torch.Tensor) -> list[torch.Tensor]:
        if self.name == "none":
            return [local]
        change = local - start
        if self.name == "fp16":
            return [change.half()]
        if self.name == "int8":
            scales = torch.stack([part.abs().max() for part in change.split(self.layout.sizes)]) / 127
            scales = torch.where(scales > 0, scales, torch.ones_like(scales))
            per_entry = scales.repeat_interleave(torch.tensor(self.layout.sizes, device=change.device))
            return [scales, torch.round(change / per_entry).clamp(-127, 127).to(torch.int8)]
        positions = change.abs().topk(self.topk, sorted=False).indices
        return [positions.int(), change[positions]]

    def decode(self, parts: list[torch.Tensor], start: torch.Tensor) -> torch.Tensor:
        """The client's new weights as the server reconstructs them (exact for ``none``)."""
        if self.name == "none":
            return parts[0].float()
        if self.name == "fp16":
            return start + parts[0].float()
        if self.name == "int8":
            scales, quantised = parts
            return start + quantised.float() * scales.repeat_interleave(torch.tensor(self.layout.sizes))
        positions, values = parts
        out = start.clone()
        out[positions.long()] += values
        return out
