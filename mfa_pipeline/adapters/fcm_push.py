"""Push through Firebase Cloud Messaging's HTTP v1 API with `pyfcm`.

Two of pyfcm's habits are switched off here: its HTTP adapter retries 502/503 inside the
call, and its client sleeps for any `Retry-After` the server sends, both holding a worker for
as long as the server likes. Retries belong to the task (backoff with jitter, a bounded
count), so the adapter below makes one attempt and drops `Retry-After` before pyfcm sees it.
Errors carry a code and a message of our own, never the token.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import requests
from pyfcm import FCMNotification
from pyfcm.errors import (
    AuthenticationError,
    FCMError,
    FCMNotRegisteredError,
    FCMSenderIdMismatchError,
    FCMServerError,
    InvalidDataError,
)
from requests.adapters import HTTPAdapter

from mfa_pipeline.ports import (
    PushError,
    PushPermanentError,
    PushReceipt,
    PushSender,
    PushTransientError,
    PushUnregisteredError,
)

if TYPE_CHECKING:
    from pathlib import Path

GOOGLE_FCM_BASE = "https://fcm.googleapis.com"


# pyfcm keeps one session per thread but mounts this one adapter on each: its connection pool
# must hold a connection for every sending thread of a threads-pool worker, or connections
# beyond the pool are closed after each push and opened again.
_POOL_CONNECTIONS = 256


class _OneAttemptAdapter(HTTPAdapter):
    """No retries inside the call, and no `Retry-After` for pyfcm to sleep on."""

    def __init__(self) -> None:
        super().__init__(max_retries=0, pool_maxsize=_POOL_CONNECTIONS)

    def build_response(self, req: Any, resp: Any) -> requests.Response:
        response = super().build_response(req, resp)
        response.headers.pop("Retry-After", None)
        return response


class FcmPushSender(PushSender):
    def __init__(
        self, service_account_file: Path, *, api_base_url: str | None = None, timeout: float = 10
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive: without one a hung FCM hangs a worker")
        account = json.loads(service_account_file.read_text())
        self._fcm = FCMNotification(
            service_account_file=str(service_account_file),
            project_id=account.get("project_id"),
            adapter=_OneAttemptAdapter(),
        )
        base = (api_base_url or GOOGLE_FCM_BASE).rstrip("/")
        self._fcm.FCM_END_POINT_BASE = f"{base}/v1/projects"
        # Load the credentials now, in one thread: pyfcm loads them on first use and then
        # forgets the file's path, so two threads racing through that first use make the
        # second one fail on a missing path.
        self._fcm._initialize_credentials()  # noqa: SLF001 - pyfcm offers no public way
        self._timeout = timeout

    def send(self, *, token: str, data: dict[str, str], ttl_seconds: int) -> PushReceipt:
        ttl = max(1, ttl_seconds)
        error: PushError
        try:
            answer = self._fcm.notify(
                fcm_token=token,
                data_payload=data,
                # Undelivered after the challenge's remaining life, a push is worthless.
                android_config={"ttl": f"{ttl}s", "priority": "high"},
                apns_config={
                    "headers": {
                        "apns-expiration": str(int(time.time()) + ttl),
                        "apns-priority": "10",
                    }
                },
                timeout=self._timeout,
            )
        except FCMNotRegisteredError:
            error = PushUnregisteredError("FCM does not know the device's token", code="404")
        except (AuthenticationError, FCMSenderIdMismatchError):
            error = PushPermanentError("FCM refused the sender's credentials", code="auth")
        except InvalidDataError as exc:
            # pyfcm raises this for a 400 and also for a failed OAuth token refresh (whose
            # argument is the underlying exception): the latter is worth a retry.
            if exc.args and isinstance(exc.args[0], Exception):
                error = PushTransientError("FCM's token endpoint failed", code="oauth")
            else:
                error = PushPermanentError("FCM rejected the message", code="400")
        except FCMServerError:
            error = PushTransientError("FCM is unavailable", code="5xx")
        except requests.Timeout:
            error = PushTransientError("FCM did not answer in time", code="timeout")
        except (requests.RequestException, FCMError):
            error = PushTransientError("FCM could not be reached", code="connection")
        else:
            return PushReceipt(provider_id=str(answer.get("name", "")))
        raise error
