"""The one exception users see: a bad value, named, with what is allowed. The command line prints it on one line."""


class ConfigError(ValueError):
    """A configuration or input value the suite cannot use."""


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless condition holds."""
    if not condition:
        raise ConfigError(message)
