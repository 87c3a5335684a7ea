"""How MILCO vectors live in an index: field names and keys, vector-field strategies, index setup."""
