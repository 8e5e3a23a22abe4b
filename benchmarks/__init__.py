"""Speed and memory benchmarks for segexplain (not tests; see README "Benchmarks")."""
