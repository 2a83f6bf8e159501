"""Training: optimizers, the Lightning trainer, callbacks and the fit-and-test runner."""
