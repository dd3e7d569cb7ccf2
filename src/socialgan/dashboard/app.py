"""The dashboard's FastAPI application: sign-in, security headers, error pages, routers.

create_app() takes everything from its arguments (services, storage, credentials), so a
test builds one against services on 127.0.0.1; services/dashboard/server.py builds one
from the environment.
"""

from __future__ import annotations

import contextlib
import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import jinja2
from fastapi import Depends, FastAPI, Form, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from socialgan.dashboard import auth
from socialgan.dashboard.auth import (
    COOKIE,
    CSRF_FIELD,
    Credentials,
    CsrfRefused,
    FailureThrottle,
    NotSignedIn,
    Session,
    SessionSigner,
)
from socialgan.dashboard.launches import Launcher
from socialgan.dashboard.services import ServiceError, Services, ServiceUnconfigured
from socialgan.errors import InvalidArgument, NotFound, SocialGanError
from socialgan.storage import ObjectStore

HERE = Path(__file__).parent
MAX_UPLOAD_FILES = 1_000  # pictures in one form; more go as a .zip
# Pages load only their own CSS, scripts and pictures (data: for generated grids).
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
       "object-src 'none'")
# The OpenAPI page is FastAPI's Swagger UI, whose script and CSS come from its CDN.
DOCS_CSP = ("default-src 'self'; img-src 'self' data: https://fastapi.tiangolo.com; "
            "style-src 'self' https://cdn.jsdelivr.net; script-src 'self' 'unsafe-inline' "
            "https://cdn.jsdelivr.net; connect-src 'self'; frame-ancestors 'none'")


@dataclass
class Dashboard:
    """What every route needs, kept on app.state.dashboard."""

    services: Services
    store: ObjectStore
    credentials: Credentials
    signer: SessionSigner
    templates: Jinja2Templates
    launcher: Launcher
    throttle: FailureThrottle = field(default_factory=FailureThrottle)
    chart_cache: dict[tuple[str, int, int], bytes] = field(default_factory=dict)

    def render(self, request: Request, name: str, session: Session | None,
               status_code: int = 200, **context: Any) -> HTMLResponse:
        return self.templates.TemplateResponse(
            request, name, {"session": session, "csrf_field": CSRF_FIELD, **context},
            status_code=status_code)

    def set_session(self, request: Request, response: Response, session: Session) -> None:
        response.set_cookie(COOKIE, self.signer.dumps(session), httponly=True,
                            samesite="strict", secure=request.url.scheme == "https",
                            max_age=int(self.signer.max_age_s), path="/")


def dashboard_of(request: Request) -> Dashboard:
    return request.app.state.dashboard


def current_session(request: Request) -> Session | None:
    return dashboard_of(request).signer.loads(request.cookies.get(COOKIE))


def signed_in(request: Request) -> Session:
    """The signed-in session; every page and /api route depends on it."""
    session = current_session(request)
    if session is None or not session.signed_in:
        raise NotSignedIn()
    return session


SignedIn = Annotated[Session, Depends(signed_in)]


async def checked_form(request: Request, session: SignedIn) -> FormData:
    """The POSTed form (files spooled), once its CSRF token matches the session's; 403
    otherwise, before anything else is read from it."""
    form = await request.form(max_files=MAX_UPLOAD_FILES)
    token = form.get(CSRF_FIELD)
    if not auth.csrf_matches(session, token if isinstance(token, str) else None):
        await form.close()
        raise CsrfRefused()
    return form


def checked_header(request: Request, session: SignedIn) -> Session:
    """A JSON POST's session, once its X-CSRF-Token header matches; 403 otherwise."""
    if not auth.csrf_matches(session, request.headers.get(auth.CSRF_HEADER)):
        raise CsrfRefused()
    return session


CheckedForm = Annotated[FormData, Depends(checked_form)]
CheckedHeader = Annotated[Session, Depends(checked_header)]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {rest} s"


def _when(unix: float | None) -> str:
    if not unix:
        return "–"
    return datetime.datetime.fromtimestamp(float(unix), datetime.UTC).strftime(
        "%Y-%m-%d %H:%M:%S UTC")


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(duration=_duration, when=_when, quote=lambda s: quote(str(s), safe="/"))
    return Jinja2Templates(env=env)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") and request.url.path != "/api/docs"


def _install_error_handlers(app: FastAPI) -> None:
    def page_or_json(request: Request, status: int, message: str) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": message}, status_code=status)
        return dashboard_of(request).render(request, "error.html", current_session(request),
                                            status_code=status, status=status, message=message)

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": "sign in first (POST /login)"}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, exc: CsrfRefused) -> Response:
        return page_or_json(request, 403, "This form's CSRF token is missing or stale: "
                            "reload the page and send it again.")

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        return page_or_json(request, exc.status, str(exc))

    @app.exception_handler(ServiceUnconfigured)
    async def service_unconfigured(request: Request, exc: ServiceUnconfigured) -> Response:
        return page_or_json(request, exc.status, str(exc))

    @app.exception_handler(SocialGanError)
    async def core_error(request: Request, exc: SocialGanError) -> Response:
        status = 404 if isinstance(exc, NotFound) else 400 \
            if isinstance(exc, InvalidArgument) else 409
        return page_or_json(request, status, str(exc))


def _install_security_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        docs = request.url.path == "/api/docs"
        response.headers.setdefault("Content-Security-Policy", DOCS_CSP if docs else CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        if "cache-control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response


def _install_sign_in(app: FastAPI) -> None:
    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request, next: str = "/") -> Response:
        dashboard = dashboard_of(request)
        session = current_session(request)
        if session and session.signed_in:
            return RedirectResponse(auth.safe_next(next), status_code=303)
        session = session or Session.fresh()  # carries the sign-in form's CSRF token
        response = dashboard.render(request, "login.html", session, next=auth.safe_next(next),
                                    error="")
        dashboard.set_session(request, response, session)
        return response

    @app.post("/login", response_class=HTMLResponse, include_in_schema=False)
    def login(request: Request, password: str = Form(""), next: str = Form("/"),
              csrf_token: str = Form("")) -> Response:
        dashboard = dashboard_of(request)
        session = current_session(request)
        if not auth.csrf_matches(session, csrf_token):
            raise CsrfRefused()
        client = request.client.host if request.client else "?"
        target = auth.safe_next(next)
        if dashboard.throttle.blocked(client):
            return dashboard.render(request, "login.html", session, status_code=429,
                                    next=target, error="Too many wrong attempts: wait a "
                                    "minute before trying again.")
        try:
            ok = dashboard.credentials.accepts(auth.check_password_field(password))
        except InvalidArgument as exc:
            return dashboard.render(request, "login.html", session, status_code=400,
                                    next=target, error=str(exc))
        if not ok:
            dashboard.throttle.failed(client)
            return dashboard.render(request, "login.html", session, status_code=401,
                                    next=target, error="Wrong API token or password.")
        response = RedirectResponse(target, status_code=303)
        # A new session (and CSRF token) at sign-in: a token seen before it is worth nothing.
        dashboard.set_session(request, response, Session.fresh(signed_in=True))
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, form: CheckedForm) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response


def create_app(services: Services, store: ObjectStore, credentials: Credentials,
               secret_key: str = "", session_hours: float = 12.0) -> FastAPI:
    from socialgan.dashboard import api, cycles, pages, review

    if not credentials.api_token:
        raise InvalidArgument("SOCIALGAN_API_TOKEN", "the dashboard needs the API token")
    dashboard = Dashboard(
        services=services, store=store, credentials=credentials,
        signer=SessionSigner(secret_key, session_hours * 3600), templates=make_templates(),
        launcher=Launcher(services))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        dashboard.launcher.close()  # the chains stop polling; started jobs run on

    app = FastAPI(title="SocialGAN dashboard", version="1", lifespan=lifespan,
                  description="The runs, datasets and models of SocialGAN, as JSON. Every "
                  "endpoint needs a signed-in session (sign in at /login).",
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.dashboard = dashboard
    _install_error_handlers(app)
    _install_security_headers(app)
    _install_sign_in(app)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/api/openapi.json", include_in_schema=False, dependencies=[Depends(signed_in)])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/api/docs", include_in_schema=False, dependencies=[Depends(signed_in)])
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/api/openapi.json",
                                   title="SocialGAN dashboard API")

    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(cycles.router)
    app.include_router(cycles.api_router)
    app.include_router(review.router)
    app.include_router(review.api_router)
    return app
