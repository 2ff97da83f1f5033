"""The stages' bodies: what one Argo pod (or one local-runner process) of each stage does.

One module per stage, free of Hera: ``workflows/stages.py`` keeps the ``@script`` signatures (Hera
reads them to build the templates) and calls these functions. Imports of ``steps.*`` stay inside
the functions, so a stage imports only what it uses.
"""
