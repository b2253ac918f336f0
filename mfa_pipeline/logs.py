"""Logging: one structlog chain that redacts, then renders JSON lines or a readable console.

Our own structlog events and the stdlib records of celery, uvicorn and twilio go through the same
processors, so every line is redacted and rendered alike: the records through
`structlog.stdlib.ProcessorFormatter`, our events straight to the same stream (a stdlib record
and its formatter's copy cost half of an event's time, and every login writes two events).
Redaction is a safety net for mistakes: code should never pass a secret to a logger at all.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import functools
import logging
import re
import sys
from collections.abc import Mapping
from pathlib import PurePath
from typing import IO, TYPE_CHECKING, Final, Literal

import structlog

if TYPE_CHECKING:
    from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "REDACTED",
    "SAFE_KEYS",
    "configure_logging",
    "get_logger",
    "redact_secrets",
    "scrub_attribute",
]

REDACTED: Final = "[redacted]"

# Names that contain a secret-sounding word but hold nothing secret. Explicit on purpose: a new
# key is redacted until someone decides here that it is harmless.
SAFE_KEYS: Final = frozenset(
    {
        "error_code",
        "status_code",
        "http_status",
        "code_length",
        "key_id",
        "key_prefix",
        "factor",
        "challenge_id",
        "user_id",
        "factor_id",
        "device_id",
        "event",
        "level",
        "timestamp",
        "logger",
        "reason",
        "outcome",
        "provider_error_code",
        "exit_code",
        "country_code",
        "backup_codes_remaining",
        "codes_remaining",
        "sms_code_ttl_seconds",
    }
)

# Words of a key name (split on `_`, `-`, `.` and camelCase; a plural `s` dropped) that mark its
# value as secret.
_SECRET_WORDS: Final = frozenset(
    {
        "code",
        "otp",
        "secret",
        "token",
        "password",
        "passwd",
        "passcode",
        "apikey",
        "authorization",
        "auth",
        "signature",
        "key",
        "cookie",
        "backup",
        "pin",
        "bearer",
        "credential",
        "otpauth",
        "jwt",
    }
)
# Fragments that mark a name as secret even glued to other words (`authToken`, `xapikey`).
_SECRET_FRAGMENTS: Final = (
    "secret",
    "token",
    "password",
    "passcode",
    "apikey",
    "authorization",
    "signature",
    "cookie",
    "otpauth",
    "credential",
    "privatekey",
    "backupcode",
)
_PHONE_WORDS: Final = frozenset({"phone", "msisdn", "to", "number", "mobile", "tel", "e164"})
_MESSAGE_WORDS: Final = frozenset(
    {"body", "text", "message", "msg", "content", "sms", "template", "subject", "payload"}
)
# Free text written by code or libraries rather than values: scrubbed for stray codes too.
_PROSE_KEYS: Final = frozenset(
    {"event", "exception", "stack", "error", "detail", "details", "reason"}
)
# Keys our own processors fill, or ProcessorFormatter's bookkeeping: left exactly as they are.
_UNTOUCHED_KEYS: Final = frozenset({"level", "timestamp", "logger", "_record", "_from_structlog"})

_MAX_DEPTH: Final = 8

Kind = Literal["secret", "phone", "message", "prose", "plain"]

_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")

# E.164-like: `+` (or its URL encoding) then 7-15 digits, spaces, dashes or parentheses between.
_PHONE = re.compile(r"(?<!\w)(?P<prefix>\+|%2[Bb])(?P<number>\(?\d(?:[ ().-]{0,2}\d){6,14})(?!\d)")
# `secret=...`, `"api_key": "..."`, `X-Twilio-Signature : ...`, `code=123456` inside a string.
# Bare "key" or "auth" name too many harmless things in prose to be matched here.
_SECRET_PAIR = re.compile(
    r"""(?<![\w.-])(?P<quote>["']?)(?P<name>[\w.-]*(?:secret|token|passw|passcode|api[_-]?key|"""
    r"""authorization|signature|cookie|otpauth|credential|private[_-]?key|backup[_-]?code|otp|"""
    r"""pin|code)[\w.-]*)(?P=quote)(?P<sep>\s*[:=]\s*)"""
    r"""(?P<value>(?:(?:[Bb]earer|Basic|Digest)\s+)?(?:"[^"]*"|'[^']*'|[^\s"',;&?)}\]]+))""",
    re.IGNORECASE,
)
_AUTH_SCHEME = re.compile(r"\b(?P<scheme>[Bb]earer|Basic|Digest)\s+[A-Za-z0-9._~+/=-]{8,}")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^:/@\s]*):[^@/\s]+@")
# In an SMS body any 6 digits (`123456`, `123 456`, `G-123456`) may be the code.
_CODE_IN_MESSAGE = re.compile(r"(?<!\d)\d{3}[ -]?\d{3}(?!\d)")
# In prose only a free-standing 6-digit run: not a fraction (`0.123456s`), a path segment
# (`/users/123456`) or part of an identifier.
_CODE_IN_PROSE = re.compile(r"(?<![\w.,/%-])\d{6}(?![\w/%-]|[.,]\d)")


# A "code" in prose is a secret only when it has the digits of one: "Status Code: 200" is not.
_MIN_CODE_DIGITS: Final = 4


def _words(name: str) -> tuple[str, set[str]]:
    normalized = _CAMEL.sub(r"\1_\2", name).lower().replace("-", "_")
    words: set[str] = set()
    for word in _WORD_SPLIT.split(normalized):
        if word:
            words.add(word)
            words.add(word.removesuffix("s"))
    return normalized, words


@functools.lru_cache(maxsize=4096)  # names repeat on every line: look at each one once
def _secret_hits(name: str) -> frozenset[str]:
    """The secret words and fragments in a key name; empty for a harmless or allow-listed one."""
    normalized, words = _words(name)
    if normalized in SAFE_KEYS:
        return frozenset()
    glued = normalized.replace("_", "").replace(".", "")
    return frozenset(words & _SECRET_WORDS) | {f for f in _SECRET_FRAGMENTS if f in glued}


def _is_secret_name(name: str) -> bool:
    return bool(_secret_hits(name))


@functools.lru_cache(maxsize=4096)
def _classify(key: str) -> Kind:
    if key in _PROSE_KEYS:
        return "prose"
    normalized, words = _words(key)
    if normalized in SAFE_KEYS:
        return "plain"
    if _is_secret_name(key):
        return "secret"
    if words & _PHONE_WORDS:
        return "phone"
    if words & _MESSAGE_WORDS:
        return "message"
    return "plain"


def _mask_phone(match: re.Match[str]) -> str:
    digits = [c for c in match["number"] if c.isdigit()]
    return f"{match['prefix']}{'*' * (len(digits) - 2)}{''.join(digits[-2:])}"


def _mask_all_but_last_two_digits(text: str) -> str:
    total = sum(c.isdigit() for c in text)
    if total <= 2:  # noqa: PLR2004 - the two digits a masked number keeps
        return text
    seen = 0
    out: list[str] = []
    for char in text:
        if char.isdigit():
            seen += 1
            out.append(char if seen > total - 2 else "*")
        else:
            out.append(char)
    return "".join(out)


def _stars(match: re.Match[str]) -> str:
    return re.sub(r"\d", "*", match.group())


def _redact_pair(match: re.Match[str]) -> str:
    name = match["name"]
    hits = _secret_hits(name)
    if not hits:
        return match.group()
    if hits == {"code"} and sum(c.isdigit() for c in match["value"]) < _MIN_CODE_DIGITS:
        return match.group()
    quote = match["quote"]
    return f"{quote}{name}{quote}{match['sep']}{REDACTED}"


def _scrub_text(text: str) -> str:
    """Phone numbers, credentials in URLs, `name=secret` pairs and auth headers in any string."""
    # The membership tests skip the regexes for the common short, harmless value.
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\g<head>:{REDACTED}@", text)
    if ":" in text or "=" in text:
        text = _SECRET_PAIR.sub(_redact_pair, text)
    if " " in text:
        text = _AUTH_SCHEME.sub(rf"\g<scheme> {REDACTED}", text)
    if "+" in text or "%2" in text:
        text = _PHONE.sub(_mask_phone, text)
    return text


def _scrub_str(text: str, kind: Kind) -> str:
    text = _scrub_text(str(text))  # str(): a StrEnum member renders as its plain value
    if kind == "phone":
        return _mask_all_but_last_two_digits(text)
    if kind == "message":
        return _CODE_IN_MESSAGE.sub(_stars, text)
    if kind == "prose":
        return _CODE_IN_PROSE.sub(_stars, text)
    return text


def _scrub(value: object, kind: Kind, depth: int = 0) -> object:  # noqa: PLR0911 - one case each
    if value is None or isinstance(value, bool) or (isinstance(value, str) and not value):
        return value  # absence and flags are never secret, and useful when debugging
    if kind == "secret":
        return REDACTED
    if depth > _MAX_DEPTH:  # cyclic or absurdly deep: not worth the risk of rendering it
        return "[truncated]"
    if isinstance(value, str):
        return _scrub_str(value, kind)
    if isinstance(value, int | float):
        if kind in {"phone", "message"}:  # a number passed as `to=` or `body=` is still one
            return _scrub_str(str(value), kind)
        return value
    if isinstance(value, Mapping):
        return {k: _scrub(v, _classify(str(k)), depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_scrub(item, kind, depth + 1) for item in value]
        return tuple(items) if isinstance(value, tuple) else items
    return _scrub_other(value, kind, depth)


def _scrub_other(value: object, kind: Kind, depth: int) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"  # raw bytes here are key material more often than not
    if isinstance(value, enum.Enum):
        return _scrub(value.value, kind, depth + 1)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, PurePath):
        return _scrub_str(str(value), kind)
    # Anything else would be rendered through its repr, which for a dataclass lists every field:
    # scrub that text (`secret='...'` pairs, phone numbers, stray codes) instead.
    return _scrub_str(repr(value), "prose" if kind == "plain" else kind)


def redact_secrets(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Structlog processor: hide secrets, codes and phone numbers, even ones passed by mistake.

    - values of secret-sounding keys (`code`, `token`, `api_key`, `Authorization`, ...) become
      `[redacted]`, except the names in `SAFE_KEYS`;
    - phone numbers anywhere (and whole values of `phone`/`to`/`msisdn`/`number` keys) keep
      only their last two digits;
    - 6-digit runs in message-like values (`body`, `text`, `sms_body`) and in free text
      (`event`, `exception`) become `******`;
    - nested dicts and lists are handled the same way.
    """
    if "exc_info" in event_dict:
        # Format the traceback now, so that its text is scrubbed like everything else and no
        # renderer formats the raw exception after us.
        event_dict = structlog.processors.format_exc_info(logger, method_name, event_dict)
    for key, value in list(event_dict.items()):
        if key not in _UNTOUCHED_KEYS:
            event_dict[key] = _scrub(value, _classify(key))
    return event_dict


def _shared_processors() -> list[Processor]:
    """What both our events and foreign (stdlib) records go through before rendering."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        # Last before rendering: it must see the context variables and the formatted traceback.
        redact_secrets,
    ]


def _renderer(fmt: str, env: str, stream: IO[str]) -> Processor:
    if fmt not in {"auto", "json", "console"}:
        raise ValueError(f"log format must be auto, json or console, not {fmt!r}")
    if fmt == "json" or (fmt == "auto" and env == "production"):
        return structlog.processors.JSONRenderer()
    isatty = getattr(stream, "isatty", None)
    return structlog.dev.ConsoleRenderer(colors=bool(isatty and isatty()))


def _level_number(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.strip().upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


class _LineWriter:
    """Where our events' rendered lines go: the stdlib handler's stream, under its lock.

    One stream and one lock for both kinds of line, so lines never interleave. `name` is what
    `add_logger_name` reads (`get_logger(__name__)`).
    """

    def __init__(self, handler: logging.StreamHandler[IO[str]], name: str | None) -> None:
        self._handler = handler
        self.name = name

    def msg(self, message: str) -> None:
        handler = self._handler
        with handler.lock or contextlib.nullcontext():
            handler.stream.write(message + "\n")
            handler.stream.flush()

    debug = info = warning = error = critical = exception = msg


def configure_logging(
    *,
    level: str = "INFO",
    fmt: str = "auto",
    env: str = "development",
    stream: IO[str] | None = None,
) -> None:
    """Route structlog and the stdlib root logger through one redacting chain.

    `fmt="auto"` renders JSON lines in production and a readable console elsewhere. Calling it
    again replaces the earlier configuration (the CLI and the Celery signal may both call it).
    `stream` defaults to the current `sys.stderr`, bound now: Celery later replaces `sys.stderr`
    with a proxy that logs, which must not log into itself.
    """
    number = _level_number(level)
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    handler.set_name(__name__)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_shared_processors(),
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _renderer(fmt, env, out),
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == __name__]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(number)
    # Twilio's client logs every request's URL and headers at INFO: noise, and personal data.
    # Only a DEBUG run (debugging the integration) shows them.
    twilio_level = number if number <= logging.DEBUG else max(number, logging.WARNING)
    logging.getLogger("twilio.http_client").setLevel(twilio_level)

    structlog.configure(
        processors=[*_shared_processors(), _renderer(fmt, env, out)],
        context_class=dict,
        logger_factory=lambda *args: _LineWriter(handler, args[0] if args else None),
        wrapper_class=structlog.make_filtering_bound_logger(number),
        # Not cached: a cached logger keeps the processor list of its first use, so a later
        # configure_logging (or structlog.testing.capture_logs) would not reach it.
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A structlog logger named like a stdlib one (`get_logger(__name__)`)."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger


def scrub_attribute(key: str, value: object) -> object:
    """A trace span attribute as it may leave the process, redacted like a log value.

    Attribute names are dotted (`http.response.status_code`, `exception.message`): the last
    part says what the value is, so `status_code` stays readable and `authorization` does not.
    """
    return _scrub(value, _classify(key.rsplit(".", 1)[-1]))
