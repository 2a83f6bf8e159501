"""The comparison stage: every paradigm's runs side by side, read back from MLflow.

``sources`` finds the runs behind the current outputs, ``table`` aggregates them over seeds,
``sections`` answers one question each, ``report`` writes the files and the MLflow run.
"""
