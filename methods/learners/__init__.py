"""Gradient learners: each owns acting, its losses and its update, and shows interventions the contract of cyclic_bench.learner."""
