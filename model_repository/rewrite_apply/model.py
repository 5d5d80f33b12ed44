"""Triton python model `rewrite_apply`: `t2iguard.runtime.stages.RewriteApply`; its spec is in
`t2iguard.contract.specs`."""

from t2iguard.runtime.stages import RewriteApply
from t2iguard.triton.backend import StageModel


class TritonPythonModel(StageModel):
    stage = RewriteApply
