"""A stand-in regulation plugin for tests on real workers: it lets every message through, at
any hour (as bench/open_rules.py does for the benchmarks).

Workers are other processes, whose clock no test can travel: under France's rules a campaign
started on a Sunday or at night would wait for the morning. A country needs a regulation
plugin enabled before non-essential messages may leave (fail closed); this one answers no
hook, so every message is allowed whenever the test runs.
"""

kind = "regulation"
