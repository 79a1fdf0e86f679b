"""Settings: the schema of the broker's YAML configuration and its loader.

``load_settings(path)`` returns validated ``Settings`` or raises ``ConfigError`` listing
every problem at once, each with its path in the file.
"""

from config.errors import ConfigError, Problem
from config.loader import load_settings
from config.schema import Settings

__all__ = ["ConfigError", "Problem", "Settings", "load_settings"]
