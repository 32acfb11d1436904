"""POST /api/selftest (bearer token, like every /api call): run the self-test now and
answer with its result. The body may name another playbook, stage and params than
`selftest:` in broadcaster.yaml (`{"playbook": "major_fire", "params": {...}}`)."""

from __future__ import annotations

import json

from aiohttp import web
from pydantic import ValidationError

from broadcaster.config import SelftestSettings
from broadcaster.selftest import Selftest

PATH = "/api/selftest"


def add_selftest_route(app: web.Application, selftest: Selftest) -> None:
    async def post(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        try:
            asked = SelftestSettings.model_validate(body) if body else selftest.settings
        except ValidationError as exc:
            detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            return web.json_response({"error": "invalid_request", "detail": detail}, status=400)
        if asked is None:
            detail = 'no selftest: in broadcaster.yaml; name one: {"playbook": "..."}'
            return web.json_response({"error": "invalid_request", "detail": detail}, status=400)
        result = await selftest.run(asked, by="api")
        return web.json_response(result.public(), dumps=lambda d: json.dumps(d, ensure_ascii=False))

    app.router.add_post(PATH, post)
