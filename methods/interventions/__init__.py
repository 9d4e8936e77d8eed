"""Plasticity interventions: each written once against the learner contract (cyclic_bench.learner), never importing a learner."""
