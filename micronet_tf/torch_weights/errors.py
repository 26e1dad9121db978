"""The converter's error type."""


class ConversionError(ValueError):
    """A checkpoint does not fit a model: names, shapes or types; the message lists each one."""
