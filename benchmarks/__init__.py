"""The benchmark suite: ``python -m benchmarks`` (see ``benchmarks/__main__.py``).

Each ``benchmarks/NAME.py`` is also a plain script: ``python benchmarks/NAME.py
[--quick]``. The library never imports from here.
"""
