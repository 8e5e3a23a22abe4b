"""The one error type the library raises on bad input.

Subclassing ValueError lets callers that already catch ValueError keep working, while the dashboard
can catch exactly this type and show its message: every message says what the user should change.
"""

from __future__ import annotations


class ExplainerError(ValueError):
    """Bad input to an explainer (model, image, region, layer, class, method, ...), with a fix in the text."""
