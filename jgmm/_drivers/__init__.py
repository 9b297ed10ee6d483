"""The drivers: fit, select, stream, online, gradient, bootstrap. Built on
``jgmm._engine`` and ``jgmm._maths``."""
