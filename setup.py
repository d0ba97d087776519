"""Build hook for the one optional C extension; everything else is in pyproject.toml.

``zapstack.zapdb._smtfast`` (the state tree's batch merge, bulk build and a
self-contained SHA-256) needs only a C compiler and the Python headers.  It is
``optional``: if it cannot be built, ``pip install`` still succeeds and ZapDB
runs its pure-Python path (``zapstack.zapdb.smt``), which tests hold equal.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "zapstack.zapdb._smtfast",
            sources=["src/zapstack/zapdb/_smtfast.c"],
            depends=[
                "src/zapstack/zapdb/_sha256.h",
                "src/zapstack/zapdb/_smtfast_api.h",
                "src/zapstack/zapdb/_smtfast_codec.h",
            ],
            extra_compile_args=["-O2", "-std=c11"],
            optional=True,
        )
    ]
)
