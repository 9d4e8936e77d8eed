"""Protocol families, one module each; installed as `cyclic_bench.protocols`."""
