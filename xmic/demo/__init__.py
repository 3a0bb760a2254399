"""``xmic demo``: the whole pipeline on a synthetic benchmark with tiny frozen encoders, in minutes on a CPU.

:func:`xmic.demo.pipeline.run_demo` generates the benchmark (:mod:`xmic.synth`), builds and pretrains a tiny
CLIP (:mod:`xmic.demo.models`, :mod:`xmic.demo.pretrain`), extracts the store (:mod:`xmic.demo.store`), rebuilds
Table 1 (:func:`xmic.evaluate.reproduce.reproduce_table`) and writes results, plots and a run report
(:mod:`xmic.demo.outputs`).
"""
