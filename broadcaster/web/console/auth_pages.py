"""The sign-in page and the refusal page: server-rendered, no script, strict headers."""

from __future__ import annotations

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from broadcaster.web.console.auth_texts import TEXTS
from broadcaster.web.guard import PAGE_CSP
from broadcaster.web.i18n import pick_language

PAGES = Environment(
    loader=PackageLoader("broadcaster.web.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)
# Console pages: no script of ours inline, no referrer (a console URL names incidents),
# never kept in a cache (they show who is signed in).
CONSOLE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Vary": "Accept-Language, Cookie",
}


def language(request: web.Request) -> str:
    """`?lang=de|en` when given, else the browser's Accept-Language."""
    asked = request.query.get("lang", "")
    return asked if asked in TEXTS else pick_language(request.headers.get("Accept-Language"))


def html(body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=body, status=status, content_type="text/html", charset="utf-8", headers=CONSOLE_HEADERS
    )


def login_page(
    lang: str,
    *,
    csrf: str,
    next_path: str,
    error: str | None = None,
    notice: str | None = None,
    name: str = "",
    status: int = 200,
    single_sign_on: str | None = None,
) -> web.Response:
    """`single_sign_on`: the label of the city's sign-in (console.oidc), when there is one."""
    t = TEXTS[lang]
    other = "en" if lang == "de" else "de"
    body = PAGES.get_template("signin.html.j2").render(
        lang=lang,
        t=t,
        csrf=csrf,
        next_path=next_path,
        error=error,
        notice=notice,
        name=name,
        other=other,
        single_sign_on=single_sign_on,
    )
    return html(body, status)


def forbidden_page(lang: str, message: str, status: int = 403) -> web.Response:
    t = TEXTS[lang]
    body = PAGES.get_template("forbidden.html.j2").render(lang=lang, t=t, message=message)
    return html(body, status)


def redirect_page(lang: str, next_path: str) -> web.Response:
    """Signed in from another site (single sign-on): a page of ours that moves on to
    `next_path` by itself, so that the browser sends the SameSite=Strict session."""
    body = PAGES.get_template("continue.html.j2").render(
        lang=lang, t=TEXTS[lang], next_path=next_path
    )
    return html(body)
