# Triton Inference Server with what the MILCO model needs: serves model repositories written by
# `milco-os triton export` (each carries its own milco-os code; the image needs only its packages).
#
#   docker build -f docker/triton.Dockerfile -t milco-os-triton .
#   docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 -v "$PWD/REPO:/models:ro" milco-os-triton
#
# TRITON_IMAGE picks another NGC release (its Python must be 3.10 or newer).
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3
FROM ${TRITON_IMAGE}

# The same file `triton export` writes beside the model as requirements.txt.
COPY milco_os/serving/model_requirements.txt /opt/milco-os/requirements.txt
RUN pip install --no-cache-dir -r /opt/milco-os/requirements.txt

EXPOSE 8000 8001 8002
ENTRYPOINT ["tritonserver"]
CMD ["--model-repository=/models"]
