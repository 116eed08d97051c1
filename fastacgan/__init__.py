"""fastacgan: a fast, reliable trainer for Auxiliary Classifier GANs (Odena et al., 2017)."""

__version__ = "0.1.0"
