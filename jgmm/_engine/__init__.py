"""The engine: the EM pass, the step, the loop and grid program, planning and
bucketing, starts, implicit derivatives, sharding. Built on ``jgmm._maths``."""
