"""How a run's processes are started: natively (``native``) or on the compose stack (``compose``).

Launchers only start and stop processes; the sequence they follow is
:mod:`loadstack.lifecycle` (which they never import: what they share with it is
:mod:`loadstack.launchers.base`), and what a run means is :mod:`loadstack.master`.
"""
