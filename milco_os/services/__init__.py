"""Local services milco-os provisions and runs: an OpenSearch node and a Triton server."""
