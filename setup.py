"""Build of the optional C accelerator; everything else is in pyproject.toml.

``optional=True``: on a machine without a working C compiler the build only warns, and
wsio installs as pure Python (``wsio.protocol.masking.SPEEDUPS`` is then False).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("wsio._speedups", sources=["src/wsio/_speedups.c"], optional=True),
    ],
)
