"""mc-simclr: self-supervised contrastive learning of spatial sound event representations."""

__version__ = "0.1.0"
