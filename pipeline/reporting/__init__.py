"""The comparison report's building blocks, below the paradigms so that each can write its own section.

``sections`` holds what a section is made of (results grouped over seeds, the two sections every paradigm
shares, champions), ``table`` the markdown cells and tables, ``significance`` the tests that call a difference a
win, ``charts`` the figures (CSV for DVC, PNG for the report). The compare stage (:mod:`pipeline.compare`) walks
the registry and puts the sections together.
"""
