"""PyTorch architectures of the model zoo, one module per architecture (or per source).

Import them through :func:`models.registry.build`; importing this package does not import torch,
each module does.
"""
