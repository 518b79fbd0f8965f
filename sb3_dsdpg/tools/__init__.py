"""The experiment tooling around DSDPG: everything that is not the algorithm.

The algorithm (arXiv 2601.20071: :mod:`sb3_dsdpg.dsdpg`, :mod:`~sb3_dsdpg.policies`, :mod:`~sb3_dsdpg.targets`,
:mod:`~sb3_dsdpg.tangents`, :mod:`~sb3_dsdpg.losses`, :mod:`~sb3_dsdpg.world_models`, :mod:`sb3_dsdpg.envs`) imports
nothing from here (``tests/test_architecture.py`` checks it). This subpackage owns:

- :mod:`~sb3_dsdpg.tools.zoo`: DSDPG inside rl-zoo3 (tables, optuna sampler, checks of zoo input);
  :mod:`~sb3_dsdpg.tools.zoo_commands`: the ``train``/``enjoy``/``record_video``/``zoo plot`` commands built on it;
- :mod:`~sb3_dsdpg.tools.compare`: the comparison with TD3 and TQC (what a sweep is, running it, its report);
- :mod:`~sb3_dsdpg.tools.diagnostics`: gradient diagnostics of a trained model;
- :mod:`~sb3_dsdpg.tools.update_cost`: the cost of one gradient step against TD3 and TQC;
- :mod:`~sb3_dsdpg.tools.machine`: the CPU a timing ran on, printed with every benchmark;
- :mod:`~sb3_dsdpg.tools.extras`: which optional extra each tool needs, and the message when it is missing.

The commands (``python -m sb3_dsdpg.train|enjoy|record_video|zoo|compare|diagnostics`` and
``python -m sb3_dsdpg.benchmarks.update_cost``) are thin modules at their documented places that call in here.
"""
