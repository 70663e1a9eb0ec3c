"""HSV Colorizer: two-stage pyramidal CNN colorization of gray photos in HSV space."""

__version__ = "0.1.0"

from hsvcolorizer.errors import ColorizerError  # noqa: E402

__all__ = ["ColorizerError", "__version__"]
