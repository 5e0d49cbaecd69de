"""Bare aiohttp speaking the Bot Framework protocol: the upper bound the other targets are compared with.

POST /api/messages -> parse the activity -> POST a reply activity to
{serviceUrl}/v3/conversations/{conversation}/activities/{id} over one shared, kept-alive ClientSession ->
answer 200. No authentication, no schema objects, no botbuilder.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import aiohttp
from aiohttp import web

from bench._common import LOOPBACK, require_loopback, server_args

SESSION = web.AppKey("session", aiohttp.ClientSession)


async def messages(request: web.Request) -> web.Response:
    activity = json.loads(await request.read())
    service_url = activity["serviceUrl"].rstrip("/")
    require_loopback(service_url)
    conversation = activity["conversation"]
    reply = {
        "type": "message",
        "text": f"Echo: {activity.get('text', '')}",
        "from": activity.get("recipient"),
        "recipient": activity.get("from"),
        "conversation": conversation,
        "replyToId": activity.get("id"),
        "channelId": activity.get("channelId"),
        "serviceUrl": activity["serviceUrl"],
    }
    url = (f"{service_url}/v3/conversations/{quote(conversation['id'], safe='')}"
           f"/activities/{quote(activity['id'], safe='')}")
    async with request.app[SESSION].post(url, json=reply) as response:
        if response.status >= 300:
            return web.json_response({"error": f"connector answered {response.status}"}, status=502)
        await response.read()
    return web.Response(status=200)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


def main() -> None:
    args = server_args("bare aiohttp echo bot for the benchmark")
    app = web.Application()
    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", healthz)

    async def session(app: web.Application):  # type: ignore[no-untyped-def]
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session)
    web.run_app(app, host=LOOPBACK, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
