"""The comparison stage: every paradigm's runs side by side, read back from MLflow.

``sources`` finds the runs behind the current outputs and fetches them, ``table`` groups them
over seeds, ``sections`` holds the two sections every paradigm shares and what each paradigm's
own section (its ``compare`` module) is made of, ``charts`` draws them (CSV for DVC, PNG for the
report), ``report`` writes the text, ``run`` does it all and logs the ``compare`` run.
"""
