"""Collaboration methods, one module per method, registered by name in ``METHODS``.

Importing this package imports every level so all methods register themselves.
"""

from mocoflow.methods.base import METHODS, Method, MethodError, Need, RunContext

from mocoflow.methods import api, logit, single, text, weight  # noqa: E402,F401  (registration side effects)

__all__ = ["METHODS", "Method", "MethodError", "Need", "RunContext"]
