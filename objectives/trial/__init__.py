"""One trial end to end and what it produces: the run, its results contract, provenance and the memory probe."""
