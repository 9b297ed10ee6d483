"""The maths: covariance families, parameters, E and M steps, missing values,
priors, scoring. Imports nothing of jgmm but ``jgmm._compile``."""
