"""The one exception type for bad input data."""


class DataError(ValueError):
    """Invalid or missing data; the message names the file, column or parameter at fault."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and what is wrong with it."""
