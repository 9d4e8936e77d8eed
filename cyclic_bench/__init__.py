"""cyclic-bench: continual deep RL under plasticity loss, seed-batched."""

__version__ = "0.1.0"
