"""The node's HTTP side: one aiohttp application per node (:mod:`.server`)."""
