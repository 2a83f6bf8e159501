"""Federated learning simulation: clients keep their data, the server sees only model updates.

- ``layout``: a model's floating-point state as one flat vector (what travels);
- ``wire``: the bytes that travel, and update compression (fp16, int8, top-k);
- ``aggregation``: FedAvg's weighted mean and the server optimizers (FedAdam, FedAvgM);
- ``server``: holds the global model; takes bytes and sample counts, nothing else;
- ``client``: a client's own data and the one local trainer every client borrows;
- ``simulation``: the rounds; ``personalization``: local fine-tuning after training.
"""
