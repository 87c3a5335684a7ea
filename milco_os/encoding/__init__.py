"""Text -> sparse vector: the encoding contract, vectors, pruning specs, passages and the Triton client."""
