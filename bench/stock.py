"""The stock botbuilder-python echo bot, as the samples write it: CloudAdapter + ActivityHandler.

Authentication is off (empty app id), so no token is fetched; everything else is the stock per-turn path
(connector factory, credentials, a new ConnectorClient and HTTP session per turn).
"""

from __future__ import annotations

import logging

from aiohttp import web
from botbuilder.core import ActivityHandler, MessageFactory, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication

from bench._common import LOOPBACK, require_loopback, server_args


class DefaultConfig:
    PORT = 0
    APP_ID = ""
    APP_PASSWORD = ""
    APP_TYPE = "MultiTenant"
    APP_TENANTID = ""


class EchoBot(ActivityHandler):
    async def on_message_activity(self, turn_context: TurnContext) -> None:
        require_loopback(turn_context.activity.service_url)
        await turn_context.send_activity(MessageFactory.text(f"Echo: {turn_context.activity.text}"))


ADAPTER = CloudAdapter(ConfigurationBotFrameworkAuthentication(DefaultConfig()))
BOT = EchoBot()


async def on_error(context: TurnContext, error: Exception) -> None:
    logging.getLogger("bench.stock").error("turn failed: %r", error)
    raise error


ADAPTER.on_turn_error = on_error


async def messages(request: web.Request) -> web.Response:
    return await ADAPTER.process(request, BOT)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


def main() -> None:
    args = server_args("stock botbuilder echo bot for the benchmark")
    logging.basicConfig(level=logging.WARNING)
    app = web.Application()
    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host=LOOPBACK, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
