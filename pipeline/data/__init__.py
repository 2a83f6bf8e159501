"""Data: load a dataset, split it for every paradigm, write and read the prepared files."""
