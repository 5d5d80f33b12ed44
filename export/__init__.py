"""Build time: the torch modules of each profile, ONNX export with parity checks, TensorRT engines, and the
repository builder that renders each model spec for a target (`cpu`, `onnx`, `trt`). Imports the core only."""
