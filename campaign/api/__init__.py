"""The Aitelier API client: every endpoint, one error tree, safe retries.

Every send waits for a slot of the ``Limiter`` the client is given (``campaign.limits``
implements it); the client imports nothing above the kernel. ``call_request_body`` is a
module-level function (also reachable as ``AitelierClient.call_request_body``).
"""

from campaign.api.client import AitelierClient
from campaign.api.failures import RawResponse, to_api_error
from campaign.api.limiter import Limiter
from campaign.api.retry import RetryPolicy, parse_retry_after, should_retry, sleep_seconds
from campaign.api.transport import check_base_url
from campaign.api.wire import (
    call_request_body,
    encode_json_body,
    format_timestamp,
    parse_timestamp,
)

__all__ = [
    "AitelierClient",
    "Limiter",
    "RawResponse",
    "RetryPolicy",
    "call_request_body",
    "check_base_url",
    "encode_json_body",
    "format_timestamp",
    "parse_retry_after",
    "parse_timestamp",
    "should_retry",
    "sleep_seconds",
    "to_api_error",
]
