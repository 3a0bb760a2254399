"""xmic: X-MIC egocentric action generalisation from a frozen-feature cache."""

__version__ = "0.1.0"
