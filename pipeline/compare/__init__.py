"""The comparison stage: every paradigm's runs side by side, read back from MLflow.

``sources`` finds the runs behind the current outputs and fetches them, ``deployment`` writes the section on
what each model costs to serve, ``report`` writes the text, ``registry`` moves the champions (an experiment moves
the challengers), ``run`` does it all and logs the ``compare`` run. Each paradigm writes its own section (its
``compare`` module) with the report's building blocks, :mod:`pipeline.reporting`.
"""
