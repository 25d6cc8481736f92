"""`make bench`: intake and end-to-end throughput and worker memory, each beside a baseline
measured in the same run on the same configuration. See docs/performance.md.

Modules here are not named test_* so pytest never collects them.
"""
