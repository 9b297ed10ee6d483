"""The adapters: model files, data files, plots, bundled data (the estimator,
``jgmm.sklearn``, and the command line, ``jgmm.cli``, are the public ones)."""
