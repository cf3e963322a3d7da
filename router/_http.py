"""HTTP plumbing of the ingress: OpenAI-shaped error responses.

Request ids need nothing here: Ray Serve's proxy already echoes a client's
``x-request-id`` (or sets a fresh one) on every response.
"""

from __future__ import annotations

import math

from starlette.responses import JSONResponse

from cluster.exceptions import RequestError

__all__ = ["error_response"]


def error_response(err: RequestError) -> JSONResponse:
    """``err`` as an OpenAI error body, with ``Retry-After`` when it has one."""
    headers = dict(err.headers)
    if err.retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(err.retry_after)))
    return JSONResponse(err.to_body(), status_code=err.status_code, headers=headers)
