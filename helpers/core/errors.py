"""The exception types of helpers: each message names the file, column, parameter or model at fault."""


class DataError(ValueError):
    """Invalid or missing data; the message names the file, column or parameter at fault."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and what is wrong with it."""


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights were asked for but are not available on this machine."""
