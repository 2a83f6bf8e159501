"""The comparison stage: every paradigm's runs side by side, read back from MLflow.

``sources`` finds the runs behind the current outputs and fetches them, ``table`` groups them
over seeds, ``sections`` answers one question each, ``plots`` draws the charts (CSV for DVC, PNG
for the report), ``report`` writes the text, ``run`` does it all and logs the ``compare`` run.
"""
