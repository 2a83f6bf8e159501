"""The Flower messages between the ServerApp and the ClientApps: the project's bytes, carried as they are.

A training request holds the server's message (the global weights and what the strategy adds, exactly the
bytes the in-process engine counts), the client's shuffling seed and its local epochs; the reply holds the
client's encoded update (the codec's bytes), its number of examples and how its local training went. A
query asks a node which client it is. Flower adds its own framing around these bytes; the bytes counted
are the project's, as in the in-process engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from flwr.app import ConfigRecord, Message, RecordDict

from pipeline.training.in_memory import TrainingPass

TRAIN, QUERY = "train", "query"  # Flower's message types
_REQUEST, _REPLY, _IDENTITY = "paradigm-lab.request", "paradigm-lab.update", "paradigm-lab.client"


@dataclass(frozen=True)
class TrainRequest:
    message: bytes
    seed: int
    epochs: int

    def content(self) -> RecordDict:
        return RecordDict({_REQUEST: ConfigRecord({"message": self.message, "seed": self.seed, "epochs": self.epochs})})

    @classmethod
    def read(cls, msg: Message) -> "TrainRequest":
        record = msg.content[_REQUEST]
        return cls(bytes(record["message"]), int(record["seed"]), int(record["epochs"]))


@dataclass(frozen=True)
class TrainReply:
    update: bytes
    examples: int
    seconds: float
    loss: float

    @classmethod
    def of(cls, update: bytes, examples: int, done: TrainingPass) -> "TrainReply":
        return cls(update, examples, float(done.seconds), float(done.loss))

    def content(self) -> RecordDict:
        fields = {"update": self.update, "examples": self.examples, "seconds": self.seconds, "loss": self.loss}
        return RecordDict({_REPLY: ConfigRecord(fields)})

    @classmethod
    def read(cls, msg: Message) -> "TrainReply":
        record = msg.content[_REPLY]
        return cls(bytes(record["update"]), int(record["examples"]), float(record["seconds"]), float(record["loss"]))


def identity(client: int) -> RecordDict:
    return RecordDict({_IDENTITY: ConfigRecord({"client": client})})


def read_identity(msg: Message) -> int:
    return int(msg.content[_IDENTITY]["client"])
