"""Which failures the retry layer retries, by AWS error code and by where a connection broke."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from confluence_runtime.aws.api import classify
from confluence_runtime.aws.pacing import Kind


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (client_error("TooManyRequestsException", 429), Kind.THROTTLED),
        (client_error("ThrottlingException", 400), Kind.THROTTLED),  # SSM, Scheduler: throttling as a 400
        (client_error("ServiceUnavailableException", 503), Kind.TRANSIENT),
        (client_error("Whatever", 502), Kind.TRANSIENT),
        (client_error("ServerException", 500), Kind.AMBIGUOUS),  # may come after the change was made
        (client_error("ClientException", 400), Kind.FATAL),
        (client_error("AccessDeniedException", 403), Kind.FATAL),
        (EndpointConnectionError(endpoint_url="http://x"), Kind.UNREACHABLE),  # refused or no such host
        (ConnectTimeoutError(endpoint_url="http://x"), Kind.TRANSIENT),
        (ReadTimeoutError(endpoint_url="http://x"), Kind.AMBIGUOUS),  # sent; the reply was lost
        (NoCredentialsError(), Kind.FATAL),
    ],
)
def test_classification(error: BaseException, kind: Kind) -> None:
    assert classify(error) is kind
