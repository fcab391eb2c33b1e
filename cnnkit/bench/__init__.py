"""``python -m cnnkit.bench``: cnnkit against PyTorch (and scipy) in one process, as ratios.

Every case runs both libraries on the same inputs, interleaved (ours, theirs, ours, theirs...)
so that drifting machine load hits both alike, and reports the best of several runs after a
warm-up. Both use the same number of threads. The output (table + JSON) is what BENCHMARKS.md
reports. PyTorch and scipy are imported here only: they are oracles, not dependencies.
"""
