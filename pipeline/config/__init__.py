"""params.yaml: the shared sections' schema (``schema``), the whole file's model with every paradigm's
section (``params``), loading with one-line errors (``loading``), dotted-key edits (``edit``), profiles."""
