"""Collaboration methods, one module per method, registered by name in ``METHODS``.

Importing this package imports every level so all methods register themselves.
"""

from mocoflow.methods import api, logit, single, text, weight  # noqa: F401  (registration side effects)
from mocoflow.methods.base import METHODS, Method, MethodError, Need, RunContext

__all__ = ["METHODS", "Method", "MethodError", "Need", "RunContext"]
