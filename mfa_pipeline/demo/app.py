"""The reference login app's routes: password, second step, security settings, administration.

Every MFA decision is the service's: this app asks `preauth` what to do after the password,
creates and verifies challenges, and shows the answers. What it keeps itself is the browser
session (who passed the password, which challenge is pending) and the "keep me logged in"
token, in a cookie of its own that it hands back to `preauth` at the next login.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from mfa_pipeline.client import (
    ActorMfaRequiredError,
    AsyncMfaClient,
    ChallengeCompletedError,
    ChallengeExpiredError,
    InvalidCodeError,
    InvalidCredentialError,
    InvalidPhoneError,
    MfaApiError,
    MfaClientError,
    NotFoundError,
    RateLimitedError,
    RequestContext,
    TooManyAttemptsError,
    TooManyResendsError,
    User,
)
from mfa_pipeline.demo import phones
from mfa_pipeline.demo.passwords import DEMO_FIRM, DemoAccount, PasswordStore, demo_store
from mfa_pipeline.demo.sessions import REAUTH_SECONDS, SESSION_COOKIE, Session, SessionStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

HERE = Path(__file__).parent
TRUSTED_COOKIE = "demo_trusted"
MAX_FORM_BYTES = 16 * 1024
LONG_POLL_SECONDS = 25.0  # under common proxies' 30 s idle timeouts


@dataclass
class DemoConfig:
    api_url: str
    api_key: str
    firm_id: str = DEMO_FIRM
    store: PasswordStore = field(default_factory=demo_store)
    secure_cookies: bool = False  # True behind HTTPS
    startup_timeout: float = 30.0


class PasskeyRefused(Exception):  # noqa: N818 - a message for the page's script
    pass


def _passkey_error(exc: MfaApiError) -> str:
    if isinstance(exc, InvalidCredentialError) and exc.reason == "origin_not_allowed":
        return "This passkey was offered to a site we do not know. Sign in on our own page."
    if isinstance(exc, TooManyAttemptsError | ChallengeExpiredError):
        return "Too many tries, or too slow. Press the button to try again."
    if isinstance(exc, NotFoundError):
        return "That took too long. Press the button to try again."
    return f"That passkey could not be used: {exc.message}"


class Redirect(Exception):  # noqa: N818 - a control-flow signal, not an error
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


def _mfa(request: Request) -> AsyncMfaClient:
    client: AsyncMfaClient = request.app.state.mfa
    return client


def _config(request: Request) -> DemoConfig:
    config: DemoConfig = request.app.state.config
    return config


def _session(request: Request) -> Session:
    session: Session = request.state.session
    return session


def _context(request: Request) -> RequestContext:
    return RequestContext(
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent", "")[:512] or None,
    )


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form, CSRF-checked (no multipart: no file uploads, so no dependency)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Redirect(request.url.path)
    fields = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if not hmac.compare_digest(fields.get("csrf", ""), _session(request).csrf):
        _session(request).flash("That form had expired. Please try again.", "alert")
        raise Redirect(request.url.path)
    return fields


def _repeated(body: bytes, name: str) -> list[str]:
    """Every value of a form field that repeats (checkboxes), in order."""
    pairs = urllib.parse.parse_qsl(body.decode("utf-8", "replace"))
    return [value for field, value in pairs if field == name]


def _signed_in(request: Request, *, admin: bool = False) -> DemoAccount:
    session = _session(request)
    account = _config(request).store.get(session.user or "")
    if account is None:
        raise Redirect("/login")
    if session.must_enroll and not request.url.path.startswith("/settings"):
        raise Redirect("/settings/security")
    if admin and not account.is_admin:
        raise Redirect("/")
    return account


def _second_step(request: Request) -> dict[str, Any]:
    session = _session(request)
    if session.pending_user is None:
        raise Redirect("/login")
    return session.second_step


def _reauthenticated(request: Request, next_url: str) -> None:
    if not _session(request).recently_reauthenticated:
        raise Redirect(f"/settings/reauth?next={urllib.parse.quote(next_url)}")


def create_app(config: DemoConfig) -> FastAPI:  # noqa: C901, PLR0915 - one route table, read top down
    """The demo app, talking to the MFA service at `config.api_url` with `config.api_key`."""
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters.update(b64=_b64, grouped=_grouped, spaced=_spaced)
    sessions = SessionStore()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncMfaClient(config.api_url, api_key=config.api_key) as mfa:
            app.state.mfa = mfa
            await _register_users(mfa, config)
            yield

    app = FastAPI(title="mfa-pipeline demo login", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.config = config
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    favicon = (HERE / "static" / "favicon.svg").read_bytes()

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon_ico() -> Response:
        """Browsers ask for it whatever the page says: an answer, not a 404 in every log."""
        return Response(favicon, media_type="image/svg+xml")

    @app.middleware("http")
    async def session_and_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        session = sessions.get(request.cookies.get(SESSION_COOKIE))
        known_sid = session.sid if session else None
        request.state.session = session = session or sessions.new()
        response = await call_next(request)
        if session.sid != known_sid:  # new, or renewed at sign-in
            response.set_cookie(
                SESSION_COOKIE,
                session.sid,
                httponly=True,
                samesite="lax",
                secure=config.secure_cookies,
            )
        # No CDN, no inline script: everything comes from this app.
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(Redirect)
    async def redirect(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, Redirect)  # noqa: S101 - registered for Redirect only
        return RedirectResponse(exc.url, status_code=303)

    @app.exception_handler(MfaClientError)
    async def service_error(request: Request, exc: Exception) -> Response:
        message = exc.message if isinstance(exc, MfaApiError) else "The MFA service is unreachable."
        return render(request, "error.html", status=503, message=message)

    def render(request: Request, name: str, *, status: int = 200, **values: Any) -> Response:
        session = _session(request)
        account = config.store.get(session.user or "")
        context = {
            "csrf": session.csrf,
            "account": account,
            "flashes": session.pop_flashes(),
            "must_enroll": session.must_enroll,
            "signing_in": session.pending_user is not None and account is None,
            **values,
        }
        return templates.TemplateResponse(request, name, context, status_code=status)

    # --- first factor ------------------------------------------------------------------------

    @app.get("/")
    async def home(request: Request) -> Response:
        account = _signed_in(request)
        session = _session(request)
        invited = session.invited_by is not None and not session.invitation_later
        return render(request, "home.html", me=account, invited=invited)

    @app.post("/invitation/later")
    async def invitation_later(request: Request) -> Response:
        _signed_in(request)
        await _form(request)
        _session(request).invitation_later = True
        raise Redirect("/")

    @app.get("/login")
    async def login_page(request: Request) -> Response:
        return render(request, "login.html", accounts=config.store.accounts())

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await _form(request)
        username = form.get("username", "").strip()
        account = await run_in_threadpool(config.store.check, username, form.get("password", ""))
        session = _session(request)
        session.user = None
        if account is None:
            return render(
                request,
                "login.html",
                status=401,
                error="Wrong user name or password.",
                username=username,
                accounts=config.store.accounts(),
            )
        sessions.renew(session)  # a new id once the password is right: no session fixation
        session.pending_user = account.username
        session.second_step = {}
        pre = await _mfa(request).preauth(
            account.username, trusted_token=request.cookies.get(TRUSTED_COOKIE)
        )
        if pre.result in ("allow", "bypass"):
            session.invited_by = pre.invited_by if pre.invited else None
            return _finish(request, account.username)
        if pre.result == "enroll":
            session.sign_in(account.username)
            session.must_enroll = True
            session.flash("Your firm requires multi-factor authentication: set it up to go on.")
            raise Redirect("/settings/security")
        session.second_step = {
            "factors": sorted({f.type for f in pre.factors}),
            "phone": next((f.phone_masked for f in pre.factors if f.type == "sms"), None),
        }
        if pre.has("webauthn"):  # the one that cannot be phished comes first
            raise Redirect("/login/passkey")
        if pre.has("push"):
            return await _start_push(request)
        raise Redirect("/login/code")

    def _finish(request: Request, username: str, trusted_token: str | None = None) -> Response:
        session = _session(request)
        session.sign_in(username)
        response = RedirectResponse("/", status_code=303)
        if trusted_token:
            response.set_cookie(
                TRUSTED_COOKIE,
                trusted_token,
                max_age=7 * 24 * 3600,
                httponly=True,
                samesite="lax",
                secure=config.secure_cookies,
            )
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        await _form(request)
        sessions.drop(_session(request).sid)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # --- second step: passkeys and security keys ---------------------------------------------

    async def _json(request: Request) -> dict[str, Any]:
        """A JSON body from this app's own script, CSRF-checked through a header."""
        body = await request.body()
        token = request.headers.get("x-csrf-token", "")
        if len(body) > MAX_FORM_BYTES or not hmac.compare_digest(token, _session(request).csrf):
            raise PasskeyRefused("That page had expired. Reload it and try again.")
        try:
            parsed = json.loads(body or b"{}")
        except ValueError as exc:
            raise PasskeyRefused("The browser sent something we could not read.") from exc
        if not isinstance(parsed, dict):
            raise PasskeyRefused("The browser sent something we could not read.")
        return parsed

    @app.exception_handler(PasskeyRefused)
    async def passkey_refused(_: Request, exc: Exception) -> Response:
        return JSONResponse({"message": str(exc)}, status_code=400)

    @app.get("/login/passkey")
    async def passkey_page(request: Request) -> Response:
        step = _second_step(request)
        return render(request, "passkey.html", step=step)

    @app.post("/login/passkey/options")
    async def passkey_options(request: Request) -> Response:
        await _json(request)
        step = _second_step(request)
        challenge = await _mfa(request).create_challenge(
            _session(request).pending_user or "", factor="webauthn", context=_context(request)
        )
        step["passkey_challenge"] = challenge.challenge_id
        return JSONResponse({"public_key": challenge.public_key})

    @app.post("/login/passkey")
    async def passkey_login(request: Request) -> Response:
        body = await _json(request)
        step = _second_step(request)
        if "passkey_challenge" not in step or not isinstance(body.get("credential"), dict):
            raise PasskeyRefused("Start again: press the button.")
        try:
            verified = await _mfa(request).verify_webauthn(
                step.pop("passkey_challenge"),
                body["credential"],
                remember_device=body.get("remember") is True,
            )
        except (InvalidCredentialError, TooManyAttemptsError, ChallengeExpiredError) as exc:
            raise PasskeyRefused(_passkey_error(exc)) from exc
        redirect = _finish(request, _session(request).pending_user or "", verified.trusted_token)
        answer = JSONResponse({"next": "/"})
        if "set-cookie" in redirect.headers:
            answer.headers.append("set-cookie", redirect.headers["set-cookie"])
        return answer

    # --- second step: push -------------------------------------------------------------------

    async def _start_push(request: Request) -> Response:
        step = _second_step(request)
        try:
            challenge = await _mfa(request).create_challenge(
                _session(request).pending_user or "", factor="push", context=_context(request)
            )
        except MfaApiError as exc:  # rate limited, a "not me" block, no active device
            _session(request).flash(f"We could not send a push to your phone: {exc.message}")
            raise Redirect("/login/code") from exc
        step["push_challenge"] = challenge.challenge_id
        step["number"] = challenge.number_match
        raise Redirect("/login/push")

    @app.get("/login/push")
    async def push_page(request: Request) -> Response:
        step = _second_step(request)
        if "push_challenge" not in step:
            raise Redirect("/login/code")
        challenge = await _mfa(request).get_challenge(step["push_challenge"])
        return render(
            request,
            "push.html",
            number=step["number"],
            push_status=challenge.status,
            message=_push_message(challenge.status),
            step=step,
        )

    @app.get("/login/push/status")
    async def push_status(request: Request) -> Response:
        """The waiting page's long-poll, through this app: the browser never sees the API key."""
        step = _second_step(request)
        if "push_challenge" not in step:
            return JSONResponse({"status": "none", "message": "No push is waiting."}, 404)
        challenge = await _mfa(request).get_challenge(
            step["push_challenge"], wait=LONG_POLL_SECONDS
        )
        return JSONResponse(
            {"status": challenge.status, "message": _push_message(challenge.status)}
        )

    @app.post("/login/push/done")
    async def push_done(request: Request) -> Response:
        await _form(request)
        step = _second_step(request)
        if "push_challenge" not in step:
            raise Redirect("/login/code")
        challenge = await _mfa(request).get_challenge(step["push_challenge"])
        if challenge.status == "approved":
            return _finish(request, _session(request).pending_user or "")
        if challenge.status == "pending":
            _session(request).flash("Not approved yet: open the app on your phone.")
        raise Redirect("/login/push")

    @app.post("/login/push/new")
    async def push_again(request: Request) -> Response:
        await _form(request)
        return await _start_push(request)

    # --- second step: codes ------------------------------------------------------------------

    @app.get("/login/code")
    async def code_page(request: Request) -> Response:
        step = _second_step(request)
        factors = step.get("factors", [])
        if "totp" not in factors and "sms" in factors and "sms_challenge" not in step:
            await _send_sms(request, step)
        return render(request, "code.html", step=step, method=_code_method(step))

    async def _send_sms(request: Request, step: dict[str, Any]) -> None:
        mfa = _mfa(request)
        session = _session(request)
        try:
            if "sms_challenge" in step:
                await mfa.resend(step["sms_challenge"])
            else:
                challenge = await mfa.create_challenge(
                    session.pending_user or "", factor="sms", context=_context(request)
                )
                step["sms_challenge"] = challenge.challenge_id
        except (TooManyResendsError, RateLimitedError) as exc:
            session.flash(exc.message, "alert")
            return
        session.flash(f"We sent a code by text message to your phone {step.get('phone') or ''}.")

    @app.post("/login/sms")
    async def send_sms(request: Request) -> Response:
        await _form(request)
        await _send_sms(request, _second_step(request))
        raise Redirect("/login/code")

    @app.post("/login/code")
    async def submit_code(request: Request) -> Response:
        form = await _form(request)
        step = _second_step(request)
        mfa = _mfa(request)
        session = _session(request)
        method = _code_method(step)
        remember = form.get("remember") == "on"
        key = "sms_challenge" if method == "sms" else "totp_challenge"
        try:
            if key not in step:  # a TOTP challenge, created at the first code typed
                challenge = await mfa.create_challenge(
                    session.pending_user or "", factor="totp", context=_context(request)
                )
                step[key] = challenge.challenge_id
            verified = await mfa.verify(step[key], form.get("code", ""), remember_device=remember)
        except InvalidCodeError as exc:
            error = _code_error(exc)
        except (TooManyAttemptsError, ChallengeExpiredError, ChallengeCompletedError) as exc:
            step.pop(key, None)  # the next code typed gets a fresh challenge (or SMS)
            locked = isinstance(exc, TooManyAttemptsError)
            if method == "totp":
                error = "Too many wrong codes, or too slow: type the next code your app shows."
            elif locked:
                error = "Too many wrong codes. Send a new code by text message."
            else:
                error = "That code has expired. Send a new code by text message."
        except RateLimitedError as exc:
            error = f"Too many attempts. Try again in {int(exc.retry_after or 60)} seconds."
        else:
            return _finish(request, session.pending_user or "", verified.trusted_token)
        return render(
            request,
            "code.html",
            status=400,
            step=step,
            method=method,
            error=error,
            remember=remember,
        )

    @app.get("/login/backup")
    async def backup_page(request: Request) -> Response:
        _second_step(request)
        return render(request, "backup.html")

    @app.post("/login/backup")
    async def submit_backup(request: Request) -> Response:
        form = await _form(request)
        _second_step(request)
        session = _session(request)
        try:
            challenge = await _mfa(request).create_challenge(
                session.pending_user or "",
                factor="backup_code",
                code=form.get("backup_code", ""),
                context=_context(request),
            )
        except (InvalidCodeError, TooManyAttemptsError):
            error = "That backup code is not right, or it was used already."
        except RateLimitedError as exc:
            error = f"Too many attempts. Try again in {int(exc.retry_after or 60)} seconds."
        else:
            if challenge.warning == "backup_codes_low":
                session.flash(
                    f"You have {challenge.backup_codes_remaining} backup codes left: "
                    "download a new set in Security settings."
                )
            return _finish(request, session.pending_user or "")
        return render(request, "backup.html", status=400, error=error)

    # --- security settings -------------------------------------------------------------------

    @app.post("/settings/passkeys/options")
    async def add_passkey_options(request: Request) -> Response:
        body = await _json(request)
        account = _signed_in(request)
        if not _session(request).recently_reauthenticated:
            raise PasskeyRefused("Confirm your password first, then add the passkey.")
        name = str(body.get("name") or "")[:64] or None
        start = await _mfa(request).webauthn_options(account.username, name=name)
        return JSONResponse(
            {"registration_id": start.registration_id, "public_key": start.public_key}
        )

    @app.post("/settings/passkeys")
    async def add_passkey(request: Request) -> Response:
        body = await _json(request)
        account = _signed_in(request)
        credential = body.get("credential")
        if not isinstance(credential, dict):
            raise PasskeyRefused("The browser sent no passkey.")
        name = str(body.get("name") or "")[:64] or None
        try:
            added = await _mfa(request).register_webauthn(
                account.username, str(body.get("registration_id", "")), credential, name=name
            )
        except (InvalidCredentialError, NotFoundError) as exc:
            raise PasskeyRefused(_passkey_error(exc)) from exc
        session = _session(request)
        session.must_enroll = False
        session.invited_by = None
        session.flash(f"Passkey “{added.name}” added. You can use it to sign in.")
        return JSONResponse({"factor_id": added.factor_id})

    @app.get("/settings/security")
    async def security(request: Request) -> Response:
        account = _signed_in(request)
        try:
            user = await _mfa(request).get_user(account.username)
        except NotFoundError:
            user = None
        reauthenticated = _session(request).recently_reauthenticated
        return render(
            request, "security.html", me=account, user=user, reauthenticated=reauthenticated
        )

    @app.get("/settings/reauth")
    async def reauth_page(request: Request) -> Response:
        _signed_in(request)
        return render(request, "reauth.html", next=_safe_next(request.query_params.get("next")))

    @app.post("/settings/reauth")
    async def reauth(request: Request) -> Response:
        account = _signed_in(request)
        form = await _form(request)
        next_url = _safe_next(form.get("next"))
        checked = await run_in_threadpool(
            config.store.check, account.username, form.get("password", "")
        )
        if checked is None:
            return render(
                request, "reauth.html", status=401, next=next_url, error="Wrong password."
            )
        _session(request).reauth_until = time.time() + REAUTH_SECONDS
        raise Redirect(next_url)

    @app.get("/settings/mfa/setup")
    async def setup_choice(request: Request) -> Response:
        _signed_in(request)
        _reauthenticated(request, "/settings/mfa/setup")
        return render(request, "setup_choose.html")

    @app.post("/settings/mfa/setup")
    async def setup_chosen(request: Request) -> Response:
        _signed_in(request)
        form = await _form(request)
        if form.get("method") == "sms":
            raise Redirect("/settings/mfa/sms")
        if form.get("method") == "totp":
            raise Redirect("/settings/mfa/totp")
        return render(request, "setup_choose.html", status=400, error="Choose a method.")

    @app.get("/settings/mfa/totp")
    async def totp_setup(request: Request) -> Response:
        account = _signed_in(request)
        _reauthenticated(request, "/settings/mfa/totp")
        session = _session(request)
        if session.setup.get("type") != "totp":
            enrollment = await _mfa(request).enroll_totp(account.username)
            session.setup = {"type": "totp", **enrollment.model_dump()}
        return render(request, "setup_totp.html", setup=session.setup)

    @app.post("/settings/mfa/totp")
    async def totp_confirm(request: Request) -> Response:
        account = _signed_in(request)
        form = await _form(request)
        session = _session(request)
        if session.setup.get("type") != "totp":
            raise Redirect("/settings/mfa/totp")
        try:
            await _mfa(request).activate_factor(
                account.username, session.setup["factor_id"], form.get("code", "")
            )
        except InvalidCodeError as exc:
            return render(
                request, "setup_totp.html", status=400, setup=session.setup, error=_code_error(exc)
            )
        return _setup_done(request, "Your authenticator app is set up.")

    def _setup_done(request: Request, message: str) -> Response:
        session = _session(request)
        session.setup = {}
        session.must_enroll = False
        session.invited_by = None  # enrolling ends the invitation
        return render(request, "setup_done.html", message=message)

    @app.get("/settings/mfa/sms")
    async def sms_setup(request: Request) -> Response:
        _signed_in(request)
        _reauthenticated(request, "/settings/mfa/sms")
        region = phones.guess_region(request.headers.get("accept-language"))
        return render(request, "setup_sms.html", countries=phones.COUNTRIES, region=region)

    @app.post("/settings/mfa/sms")
    async def sms_enroll(request: Request) -> Response:
        account = _signed_in(request)
        _reauthenticated(request, "/settings/mfa/sms")
        form = await _form(request)
        region = form.get("country", phones.DEFAULT_REGION)
        phone = form.get("phone", "")
        try:
            enrollment = await _mfa(request).enroll_sms(account.username, phone, region=region)
        except InvalidPhoneError:
            return render(
                request,
                "setup_sms.html",
                status=400,
                countries=phones.COUNTRIES,
                region=region,
                phone=phone,
                error="That is not a mobile number we can send a text message to. "
                "Check the country and the number.",
            )
        _session(request).setup = {"type": "sms", **enrollment.model_dump()}
        raise Redirect("/settings/mfa/sms/confirm")

    @app.get("/settings/phone-format")
    async def phone_format(request: Request) -> Response:
        """Formats a number as it is typed, for the SMS setup page's few lines of JS."""
        _signed_in(request)
        formatted, region = phones.format_as_typed(
            request.query_params.get("number", ""), request.query_params.get("country", "")
        )
        return JSONResponse({"formatted": formatted, "country": region})

    @app.get("/settings/mfa/sms/confirm")
    async def sms_confirm_page(request: Request) -> Response:
        _signed_in(request)
        setup = _session(request).setup
        if setup.get("type") != "sms":
            raise Redirect("/settings/mfa/sms")
        return render(request, "setup_sms_confirm.html", setup=setup)

    @app.post("/settings/mfa/sms/confirm")
    async def sms_confirm(request: Request) -> Response:
        account = _signed_in(request)
        form = await _form(request)
        setup = _session(request).setup
        if setup.get("type") != "sms":
            raise Redirect("/settings/mfa/sms")
        mfa = _mfa(request)
        try:
            if form.get("action") == "resend":
                await mfa.resend(setup["challenge_id"])
                _session(request).flash(f"We sent a new code to {setup['phone_display']}.")
                raise Redirect("/settings/mfa/sms/confirm")
            await mfa.activate_factor(account.username, setup["factor_id"], form.get("code", ""))
        except InvalidCodeError as exc:
            error = _code_error(exc)
        except (MfaApiError, TooManyResendsError) as exc:
            error = exc.message
        else:
            return _setup_done(request, f"Text messages to {setup['phone_display']} are set up.")
        return render(request, "setup_sms_confirm.html", status=400, setup=setup, error=error)

    @app.post("/settings/factors/{factor_id}/remove")
    async def remove_factor(request: Request, factor_id: str) -> Response:
        account = _signed_in(request)
        await _form(request)
        _reauthenticated(request, "/settings/security")
        await _mfa(request).delete_factor(account.username, factor_id)
        _session(request).flash("The method was removed.")
        raise Redirect("/settings/security")

    @app.post("/settings/trusted-sessions/revoke")
    async def revoke_trusted(request: Request) -> Response:
        account = _signed_in(request)
        await _form(request)
        await _mfa(request).revoke_trusted_sessions(account.username)
        _session(request).flash("Every browser kept logged in will ask for a code again.")
        raise Redirect("/settings/security")

    @app.get("/settings/backup-codes")
    async def backup_codes_page(request: Request) -> Response:
        _signed_in(request)
        return render(request, "backup_codes_password.html")

    @app.post("/settings/backup-codes")
    async def backup_codes(request: Request) -> Response:
        account = _signed_in(request)
        form = await _form(request)
        checked = await run_in_threadpool(
            config.store.check, account.username, form.get("password", "")
        )
        if checked is None:
            return render(
                request, "backup_codes_password.html", status=401, error="Wrong password."
            )
        codes = await _mfa(request).generate_backup_codes(account.username)
        text = _backup_codes_file(account, codes.codes)
        return render(
            request,
            "backup_codes.html",
            codes=codes.codes,
            download="data:text/plain;charset=utf-8," + urllib.parse.quote(text),
        )

    # --- administration ----------------------------------------------------------------------

    @app.get("/admin")
    async def admin_page(request: Request) -> Response:
        me = _signed_in(request, admin=True)
        mfa = _mfa(request)
        policy = await mfa.get_firm_policy(me.firm_id)
        rows: list[tuple[DemoAccount, User | None]] = []
        for account in config.store.accounts():
            if account.firm_id != me.firm_id:
                continue
            try:
                rows.append((account, await mfa.get_user(account.username)))
            except NotFoundError:
                rows.append((account, None))
        return render(request, "admin.html", me=me, policy=policy, rows=rows)

    @app.post("/admin/policy")
    async def admin_policy(request: Request) -> Response:
        me = _signed_in(request, admin=True)
        form = await _form(request)
        require = form.get("require_mfa") == "on"
        try:
            await _mfa(request).put_firm_policy(
                me.firm_id, actor_id=me.username, require_mfa=require
            )
        except ActorMfaRequiredError:
            _session(request).flash(
                "Set up multi-factor authentication on your own account first.", "alert"
            )
        else:
            _session(request).flash(
                "Multi-factor authentication is now required for everyone at the firm."
                if require
                else "Multi-factor authentication is now optional at the firm."
            )
        raise Redirect("/admin")

    @app.post("/admin/invitations")
    async def admin_invite(request: Request) -> Response:
        me = _signed_in(request, admin=True)
        await _form(request)  # the CSRF check
        chosen = _repeated(await request.body(), "user_ids")
        session = _session(request)
        if not chosen:
            session.flash("Choose at least one user to invite.", "alert")
            raise Redirect("/admin")
        try:
            result = await _mfa(request).invite_users(
                me.firm_id, actor_id=me.username, user_ids=chosen
            )
        except ActorMfaRequiredError:
            session.flash("Set up multi-factor authentication on your own account first.", "alert")
        else:
            names = [_display(config, u) for u in result.invited]
            skipped = [_display(config, s.user_id) for s in result.skipped]
            session.flash(
                f"Invited {', '.join(names) or 'nobody'} to set up multi-factor authentication."
                + (f" Already set up or not invitable: {', '.join(skipped)}." if skipped else "")
            )
        raise Redirect("/admin")

    @app.get("/admin/users/{username}/reset")
    async def admin_reset_page(request: Request, username: str) -> Response:
        _signed_in(request, admin=True)
        target = config.store.get(username)
        if target is None:
            raise Redirect("/admin")
        return render(request, "admin_reset.html", target=target)

    @app.post("/admin/users/{username}/reset")
    async def admin_reset(request: Request, username: str) -> Response:
        me = _signed_in(request, admin=True)
        await _form(request)
        target = config.store.get(username)
        if target is None:
            raise Redirect("/admin")
        result = await _mfa(request).reset_user(username, actor_id=me.username)
        _session(request).flash(
            f"Reset {target.display_name}: {result.factors_removed} method(s) removed, "
            f"{result.backup_codes_removed} backup code(s) deleted, "
            f"{result.trusted_sessions_revoked} remembered browser(s) signed out."
        )
        raise Redirect("/admin")

    return app


def _display(config: DemoConfig, username: str) -> str:
    account = config.store.get(username)
    return account.display_name if account else username


async def _register_users(mfa: AsyncMfaClient, config: DemoConfig) -> None:
    """Create the demo accounts' MFA records, waiting for the service to come up first."""
    deadline = time.monotonic() + config.startup_timeout
    while True:
        try:
            for account in config.store.accounts():
                # The service checks the role on every administrative call: the demo's
                # administrator must be one there too, not only on this app's own pages.
                role = "admin" if account.is_admin else "member"
                await mfa.put_user(account.username, firm_id=account.firm_id, role=role)
        except MfaClientError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
        else:
            return


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _grouped(secret: str) -> str:
    """A secret key in groups of four, as authenticator apps print them: easier to copy by eye."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _spaced(secret: str) -> str:
    """One character at a time, so a screen reader spells the key rather than reading words."""
    return " ".join(secret)


def _code_method(step: dict[str, Any]) -> str:
    """Which code the form expects: SMS once one was sent, else the authenticator app's."""
    if "sms_challenge" in step or "totp" not in step.get("factors", []):
        return "sms"
    return "totp"


def _code_error(exc: InvalidCodeError) -> str:
    if exc.reason == "clock_skew":
        return (
            "That code is from another time. Check that the date, time and time zone of the "
            "device with your authenticator are set automatically."
        )
    if exc.reason == "replayed":
        return "That code was used already. Wait for the next one."
    if exc.attempts_remaining is None:
        return "Enter the six digits of the code."
    return f"That code is not right. {exc.attempts_remaining} attempts left."


def _push_message(status: str) -> str:
    return {
        "pending": "Waiting for your phone…",
        "approved": "Approved. Signing you in…",
        "denied": "The sign-in was denied on your phone.",
        "expired": "The request expired before it was answered.",
        "failed": "The push could not be delivered to your phone.",
    }.get(status, f"The request is {status}.")


def _safe_next(value: str | None) -> str:
    """Only this app's settings pages: never an open redirect."""
    if value and value.startswith("/settings/") and "//" not in value:
        return value
    return "/settings/security"


def _backup_codes_file(account: DemoAccount, codes: list[str]) -> str:
    lines = [
        f"Backup codes for {account.display_name} ({account.username})",
        "",
        "Each code works once. At sign-in, choose 'Use backup security code' and type one.",
        "",
        *codes,
        "",
    ]
    return "\n".join(lines)
