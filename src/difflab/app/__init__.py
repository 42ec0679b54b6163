"""The config-driven application layer: the registry of names, configs, building objects from
them, loading runs, and one module per command family (train, sample, evaluate, plot,
bench-samplers, doctor, demo) behind the ``difflab`` command line (``app/cli.py``).

The math lives in the package above and never imports this one.
"""
