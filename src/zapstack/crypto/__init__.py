"""Cryptographic primitives of zapstack, each behind a small bytes-in/bytes-out API.

* :mod:`zapstack.crypto.bls`      -- BLS12-381 proof-of-possession scheme (blspy).
* :mod:`zapstack.crypto.mldsa`    -- ML-DSA-65, FIPS 204 (cryptography).
* :mod:`zapstack.crypto.slhdsa`   -- SLH-DSA, FIPS 205 (pqcrypto; deterministic keys).
* :mod:`zapstack.crypto.ringtail` -- two-round threshold lattice signature (numpy).

Contract: keys and signatures cross these APIs as ``bytes``; ``verify`` functions
return ``bool`` and never raise on malformed input (wrong lengths, garbage bytes).
Key generation takes a seed so that validator sets and vectors are reproducible.
"""
