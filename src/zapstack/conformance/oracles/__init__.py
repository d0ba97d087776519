"""Independent reference models ("oracles") that expected values come from.

Each oracle is a small, readable model written from the docs (and the RFCs they
cite), never from the code under test; the tests hold the implementation equal
to it.
"""
