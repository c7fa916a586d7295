"""Engine benchmarks: Spark UDFs vs Dask tasks vs Ray tasks vs Ray actors, in one run.

``make bench`` runs ``python -m benchmarks.run``, which runs this suite with
pytest-benchmark and writes ``benchmarks/results/`` and the plots of the
Benchmarks page. ``make test`` runs the same tests in smoke mode
(``--benchmark-disable``): smallest sizes, every result checked, nothing timed.
"""
