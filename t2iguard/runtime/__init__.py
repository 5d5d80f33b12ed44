"""The runtime: a request's code over numpy (pipeline, guidance, scheduler, text, rewrite, images, watermark, verify,
audit, the python models' stages, runners). Runs inside Triton's python stubs and in-process alike; imports
only the contract, and no training framework (torch, transformers' models, diffusers)."""
