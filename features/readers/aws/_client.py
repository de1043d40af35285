"""One boto3 client factory for every live source, and AWS errors mapped to ours.

Clients honour ``endpoint_url`` (a moto server, LocalStack) and the standard AWS
environment (``AWS_PROFILE``, ``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_<SERVICE>``,
``AWS_DEFAULT_REGION``, ...). Throttling, 5xx answers and dropped connections are
retried by botocore's ``standard`` (or ``adaptive``, which also paces the client) retry
mode with exponential backoff and jitter; what still fails afterwards becomes an
:class:`~features.exceptions.IngestError` saying what failed and how often it was tried,
and credential problems a :class:`~features.exceptions.ConfigError` saying what to do.
Neither carries a traceback to the user.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from features.exceptions import ConfigError, IngestError

RetryMode = Literal["standard", "adaptive", "legacy"]

#: Error codes AWS answers for credentials that are expired, revoked or unknown.
CREDENTIAL_ERRORS = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AuthFailure",
        "InvalidSignatureException",
    }
)
#: Error codes of a refused permission (credentials valid, policy missing).
ACCESS_ERRORS = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
#: Error codes botocore retries as throttling.
THROTTLING_ERRORS = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "LimitExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "RequestThrottled",
    }
)


@dataclass(frozen=True)
class AwsOptions:
    """How to reach AWS: endpoint, region, profile and retry policy.

    Parameters
    ----------
    endpoint_url : str, optional
        Send every request there (a moto server, LocalStack). Default: the standard
        AWS environment (``AWS_ENDPOINT_URL`` or the service's public endpoint).
    region : str, optional
        Region of the clients (Cost Explorer is global; its endpoint is us-east-1).
        Default: ``AWS_DEFAULT_REGION`` / the profile's, else ``us-east-1``.
    profile : str, optional
        A named profile of the shared AWS config.
    max_attempts : int
        Attempts per request, the first included (botocore ``total_max_attempts``).
    retry_mode : {"standard", "adaptive", "legacy"}
        botocore's retry mode; ``adaptive`` also rate-limits the client after throttling.
    """

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    max_attempts: int = 6
    retry_mode: RetryMode = "standard"

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ConfigError(
                f"parameter max_attempts must be an int >= 1, got {self.max_attempts!r}"
            )
        if self.retry_mode not in ("standard", "adaptive", "legacy"):
            raise ConfigError(
                "parameter retry_mode must be one of standard, adaptive, legacy, "
                f"got {self.retry_mode!r}"
            )


def make_client(
    service: str, options: AwsOptions | None = None, *, region: str | None = None
) -> Any:
    """A boto3 client for ``service`` configured by ``options``.

    Raises
    ------
    ConfigError
        When boto3 is missing or the profile does not exist.
    """
    opts = options or AwsOptions()
    try:
        import boto3
        import botocore.exceptions
        from botocore.config import Config
    except ImportError:  # pragma: no cover - boto3 is a dependency
        raise ConfigError("live AWS ingestion needs boto3: pip install boto3") from None
    try:
        session = boto3.session.Session(profile_name=opts.profile)
    except botocore.exceptions.ProfileNotFound as exc:
        raise ConfigError(f"AWS profile {opts.profile!r} not found ({exc})") from None
    config = Config(
        retries={"total_max_attempts": opts.max_attempts, "mode": opts.retry_mode},
        connect_timeout=10,
        read_timeout=60,
        user_agent_extra="forecaster-live-ingest",
    )
    region_name = region or opts.region or session.region_name or "us-east-1"
    return session.client(
        service, region_name=region_name, endpoint_url=opts.endpoint_url, config=config
    )


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (empty when there is none)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 0


def _attempts(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return int(response.get("ResponseMetadata", {}).get("RetryAttempts", 0) or 0) + 1
    return 1


def translate(exc: BaseException, what: str) -> Exception:
    """Map a botocore error raised while doing ``what`` to a ForecasterError.

    ``what`` names the call and its target (``"ce.get_cost_and_usage 2024-01-01..2024-04-01"``).
    Errors that are not botocore's are returned unchanged.
    """
    import botocore.exceptions as bce

    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
        return ConfigError(
            f"{what}: no usable AWS credentials found ({exc}); set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE (or --profile), or run where an instance role "
            "is available"
        )
    if isinstance(exc, bce.TokenRetrievalError | bce.SSOTokenLoadError):
        return ConfigError(
            f"{what}: the AWS SSO session has expired ({exc}); run `aws sso login` and try again"
        )
    if isinstance(exc, bce.ClientError):
        code = error_code(exc)
        message = str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
        if code in CREDENTIAL_ERRORS:
            return ConfigError(
                f"{what}: AWS refused the credentials ({code}: {message}). They are expired or "
                "invalid: refresh them (new session token, `aws sso login`, or another profile) "
                "and run the command again"
            )
        if code in ACCESS_ERRORS:
            return ConfigError(
                f"{what}: access denied ({code}: {message}); the credentials lack the IAM "
                "permission for this call"
            )
        attempts = _attempts(exc)
        if code in THROTTLING_ERRORS:
            return IngestError(
                f"{what}: AWS kept throttling the request ({code}: {message}) after {attempts} "
                "attempt(s) with backoff; nothing was stored. Try again later, raise "
                "--max-attempts, or use --retry-mode adaptive"
            )
        status = _status(exc)
        if status >= 500:
            return IngestError(
                f"{what}: AWS answered HTTP {status} ({code or 'server error'}: {message}) "
                f"after {attempts} attempt(s) with backoff; nothing was stored. Try again later"
            )
        return IngestError(f"{what}: AWS error {code or status} ({message}); nothing was stored")
    if isinstance(exc, bce.EndpointConnectionError | bce.ConnectionClosedError):
        return IngestError(f"{what}: cannot reach the AWS endpoint ({exc}); nothing was stored")
    if isinstance(exc, bce.ReadTimeoutError | bce.ConnectTimeoutError):
        return IngestError(f"{what}: the AWS endpoint timed out ({exc}); nothing was stored")
    if isinstance(exc, bce.BotoCoreError):
        return IngestError(f"{what}: {exc}; nothing was stored")
    return exc  # type: ignore[return-value]


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Re-raise botocore errors inside the block as ForecasterErrors naming ``what``."""
    import botocore.exceptions as bce

    try:
        yield
    except (bce.BotoCoreError, bce.ClientError) as exc:
        raise translate(exc, what) from None


def call(fn: Callable[..., Any], what: str, **params: Any) -> Any:
    """Call a boto3 client method, translating its errors (see :func:`translate`)."""
    with aws_errors(what):
        return fn(**params)
