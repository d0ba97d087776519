"""The four QuasarCert legs, each over its own domain-separated digest.

==========  =========================================  ==========================
leg         module                                     signing
==========  =========================================  ==========================
BLS         :mod:`.bls` aggregate + bitmap             one round, threads
Pulsar      :mod:`.pulsar` accountable ML-DSA-65 QC    one round, threads
Corona      :mod:`.corona` Ringtail threshold (2 rds)  commit, respond, combine
Magnetar    :mod:`.magnetar` accountable SLH-DSA QC    one round, process pool
==========  =========================================  ==========================

Every ``verify(vset, ctx, field)`` takes a *non-empty* field and returns the
signer indices (empty for Corona) or raises :class:`~zapstack.errors.InvalidCert`
saying which leg failed and why; it never raises anything else.
"""
