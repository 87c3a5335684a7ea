"""Trivial Python-backend model used by the test suite to exercise a real tritonserver."""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            texts = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy()
            values = pb_utils.get_input_tensor_by_name(request, "VALUES").as_numpy()
            decoded = [[item.decode("utf-8") for item in row] for row in texts]
            upper = np.array([[text.upper().encode("utf-8") for text in row] for row in decoded], dtype=np.object_)
            length = np.array([[len(text) for text in row] for row in decoded], dtype=np.int64)
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("UPPER", upper),
                        pb_utils.Tensor("LENGTH", length),
                        pb_utils.Tensor("SCALED", (values * 2).astype(np.float32)),
                    ]
                )
            )
        return responses
