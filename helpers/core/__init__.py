"""Used by every layer: exceptions, atomic files, parameter checks, command-line conventions, mixed precision, the machine."""
