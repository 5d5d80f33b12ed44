"""Build time: torch modules of each profile, ONNX export with parity checks, and the Triton
repository builder that renders each model spec for a target (`cpu`, `onnx`, `trt`)."""
