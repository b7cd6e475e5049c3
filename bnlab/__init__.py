"""bnlab: reproducible studies of batch norm, initialisation, dropout and learning-rate policy."""

__version__ = "0.1.0"
