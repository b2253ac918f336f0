"""Test doubles of the outbound ports: they record what is sent and raise what they are told."""

from __future__ import annotations

from dataclasses import dataclass

from mfa_pipeline.ports import PushError, PushReceipt, PushSender, WebhookError, WebhookSender


@dataclass(frozen=True, slots=True)
class Push:
    token: str
    data: dict[str, str]
    ttl_seconds: int


class RecordingPushSender(PushSender):
    def __init__(self) -> None:
        self.sent: list[Push] = []
        self._failures: list[PushError] = []

    def fail_next(self, error: PushError) -> None:
        self._failures.append(error)

    def send(self, *, token: str, data: dict[str, str], ttl_seconds: int) -> PushReceipt:
        if self._failures:
            raise self._failures.pop(0)
        self.sent.append(Push(token, dict(data), ttl_seconds))
        return PushReceipt(provider_id=f"push-{len(self.sent)}")


@dataclass(frozen=True, slots=True)
class Post:
    url: str
    body: bytes
    headers: dict[str, str]


class RecordingWebhookSender(WebhookSender):
    def __init__(self) -> None:
        self.posts: list[Post] = []
        self._failures: list[WebhookError] = []

    def fail_next(self, error: WebhookError) -> None:
        self._failures.append(error)

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        if self._failures:
            raise self._failures.pop(0)
        self.posts.append(Post(url, body, dict(headers)))
