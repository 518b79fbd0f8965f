"""The comparison of DSDPG with TD3 and TQC (``python -m sb3_dsdpg.compare``), in three modules that import downwards.

- :mod:`~sb3_dsdpg.tools.compare.runs`: what a sweep is (envs, suites, runs, protocols, the completion marker);
- :mod:`~sb3_dsdpg.tools.compare.report`: the report of a sweep's finished runs (imports ``runs`` only);
- :mod:`~sb3_dsdpg.tools.compare.sweep`: running a sweep locally or on Ray, and the command line (imports both).

Needs the ``zoo`` extra (and ``distributed`` for ``--backend ray``).
"""
