"""The model zoo, model contract and ONNX Runtime runner (see docs; issues #5 and #6)."""
