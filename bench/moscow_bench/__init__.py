"""The benchmark suite's library; ``bench/suite.py`` and ``bench/report.py`` are its entry points
(they put ``bench/`` on the import path, which also holds the standalone ``fsync_probe.py``).

One module per concern, in the order a run uses them:

- ``workspace``: where things live (repository, tools, results, scratch folders) and the log line.
- ``options``: the command line of ``bench/suite.py`` (every flag, its default and its help).
- ``procs``: process sampling from /proc (process trees, peak RSS, CPU time, machine load).
- ``loopback``: free ports and raw HTTP status polls on 127.0.0.1.
- ``systems``: the systems under test (moscow-time and the Flask peers): start, count, stop.
- ``load``: the load driver: one measured ``oha`` run per system x scenario x concurrency.
- ``checks``: the checks besides load: distinct visit numbers, start-up time, the fsync probe.
- ``targets``: the pass/miss targets computed from a results document.
- ``machine``: the description of the machine and the tools stored with every run.
- ``results``: the results files (``run-<time>.json``, the ``latest.json`` pointer) and look-ups in them.
- ``report_page`` and ``report_charts``: ``docs/benchmarks.md`` and its two charts.
"""
