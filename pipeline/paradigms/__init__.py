"""One module per training paradigm; each is what its DVC stage runs."""
