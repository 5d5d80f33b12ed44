"""Triton python model `safe_t2i`: the BLS orchestrator.

Reads as `t2iguard.runtime.pipeline.SafeT2IPipeline.__call__`: validate -> prompt guard -> rewrite ->
encode -> denoise (unet per step) -> decode -> image guard -> regenerate? -> watermark -> respond,
then one audit event.
"""

from t2iguard.triton.backend import SafeT2IModel


class TritonPythonModel(SafeT2IModel):
    pass
