"""Source corpora and audio I/O: synthetic generator, FSDnoisy18k and folder readers, shards."""
