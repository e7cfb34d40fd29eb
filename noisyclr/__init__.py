"""noisyclr: learning with noisy labels through contrastive representation learning."""

__version__ = "0.1.0"
