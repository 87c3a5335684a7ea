"""MILCO inside Triton Inference Server: the python-backend model and the model-repository export."""
