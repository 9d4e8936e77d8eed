"""Methods, one module each; installed as `cyclic_bench.methods`."""
