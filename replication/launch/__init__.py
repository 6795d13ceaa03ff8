"""Launching workflow jobs on a node's GPUs (:mod:`.gpu_slots`). Standard library only: the workflow runs
``replication/launch/gpu_slots.py`` as a script, so taking a GPU does not import torch."""
