"""Loading: the automations folder read into validated specs, or every problem at once.

YAML with the line of every value, ``${VAR}`` interpolation, the spec's
validation, checks the server would make later (its own models, block kinds,
templates rendered in its sandbox), each problem as ``file:line: message (fix)``.
"""

from triggers.load.bundle import Bundle, Declared, load_bundle, spec_files

__all__ = ["Bundle", "Declared", "load_bundle", "spec_files"]
