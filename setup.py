"""Build hook for the optional C extensions; everything else is in pyproject.toml.

``zapstack.zapdb._smtfast`` (the state tree's batch merge, bulk build and a
self-contained SHA-256) needs only a C compiler and the Python headers.  It is
``optional``: if it cannot be built, ``pip install`` still succeeds and ZapDB
runs its pure-Python path (``zapstack.zapdb.smt``), which tests hold equal.
``zapstack.crypto.ringtail._ringfast`` (Ringtail's NTT, inverse NTT,
NTT-domain matrix product and polar Gaussian block) is optional the same way: without it
``zapstack.crypto.ringtail.ring`` runs its numpy path, which tests hold equal.
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
                "src/zapstack/zapdb/_smtfast_lmdb.h",
                "src/zapstack/zapdb/_smtfast_lmdb_bulk.h",
                "src/zapstack/zapdb/_smtfast_read.h",
                "src/zapstack/zapdb/_smtfast_serve.h",
                "src/zapstack/zapdb/_smtfast_sort.h",
                "src/zapstack/zapdb/_smtfast_table.h",
                "src/zapstack/zapdb/_smtfast_sync.h",
                "src/zapstack/zapdb/_smtfast_sync_many.h",
                "src/zapstack/zapdb/_smtfast_sync_join.h",
                "src/zapstack/zapdb/_smtfast_sync_out.h",
            ],
            extra_compile_args=["-O2", "-std=c11", "-pthread"],
            extra_link_args=["-pthread"],
            optional=True,
        ),
        Extension(
            "zapstack.crypto.ringtail._ringfast",
            sources=["src/zapstack/crypto/ringtail/_ringfast.c"],
            # -ffp-contract=off: the Gaussian block must round like sampling.py (no FMA)
            extra_compile_args=["-O2", "-std=c11", "-ffp-contract=off"],
            optional=True,
        ),
    ]
)
