"""sb3-latent-curl: CURL on top of sb3-latent's RAD, registered through sb3-latent's entry points."""

from sb3_latent_curl.curl import CURL

__version__ = "0.1.0"

__all__ = ["CURL"]
