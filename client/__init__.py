"""gRPC client library for t2iguard, over `tritonclient.grpc` (sync) and `tritonclient.grpc.aio`.

    from t2iguard.client import SafeT2IClient
    with SafeT2IClient("localhost:8001") as client:
        result = client.generate("a red circle on a blue background", seed=1)
        if not result.refused:
            result.save("outputs/")
"""

from t2iguard.client.aio import AsyncSafeT2IClient
from t2iguard.client.results import GenerateResult, RewriteResult, ScreenResult
from t2iguard.client.sync import SafeT2IClient

__all__ = ["AsyncSafeT2IClient", "GenerateResult", "RewriteResult", "SafeT2IClient", "ScreenResult"]
