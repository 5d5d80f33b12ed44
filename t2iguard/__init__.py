"""t2iguard: a text-to-image service with a layered safety stack served by NVIDIA Triton.

Layers, each a package with its purpose in its docstring; imports go one way (tests/test_layers.py):

    contract    what everything agrees on: taxonomy, model specs, profiles, policy, errors, report
    runtime     the request's code over numpy: pipeline, guidance, scheduler, text, rewrite, images,
                watermark, audit, the python models' stages, runners      (imports contract)
    triton      python-backend adapters and the tritonserver launcher    (imports runtime, contract)
    client      gRPC client library                                        (imports runtime, contract)
    export      build time: torch modules, ONNX + parity, TensorRT, config rendering, the repository builder
    training    trainers and the data they are trained on                  (imports export)
    evaluation  evaluations, red-teaming and their reports  (imports training, export, client)
    cli         the `t2iguard` command                                     (imports everything)

Nothing that runs inside Triton, and nothing in the client, imports export, training or evaluation.
"""

__version__ = "0.1.0"
