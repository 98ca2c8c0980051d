"""edgewise.benchmarks: latency, throughput, memory, size and accuracy, measured in one run.

>>> from edgewise.benchmarks.latency import bench_bundle
>>> rows = bench_bundle("digits.bundle", threads=[1, 2])   # doctest: +SKIP
"""
