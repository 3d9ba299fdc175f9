"""edgebench: measures what generative AI really costs on small devices."""
__version__ = "0.1.0"
