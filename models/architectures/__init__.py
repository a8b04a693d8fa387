"""PyTorch architectures of the model zoo, one module per architecture (or per source).

Import them through :func:`affectstream.models.registry.build`; importing this package does not
import torch, each module does.
"""
