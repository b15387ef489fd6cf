"""The version of wsio, declared here only: the build reads this literal
(``[tool.setuptools.dynamic]`` in pyproject.toml) without importing wsio, and
``import wsio`` reads it without the cost of ``importlib.metadata``."""

__version__ = "0.1.0"
