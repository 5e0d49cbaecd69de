"""Local Teams for newcomers and tests: the bot in local mode plus the Microsoft 365 Agents Playground, with mock
data made from the organisation file (the demo people, the LAMU team and channel).

The Playground always runs behind playground/guard.cjs (loopback only) via playground.launcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

from bot.app import Runtime, create_app
from bot.serving import serving
from bot.settings import Settings
from hms.clock import Clock
from hms.config import HmsConfig
from playground import launcher as playground

log = logging.getLogger("hms.local")

TENANT_ID = "khm-demo-tenant"
BOT = {"id": "28:hms-hjulet-local", "name": "HMS-hjulet"}
PERSONAL_CHAT = "a:hms-personal-chat"
TEAM_ID = "19:lamu-general@thread.tacv2"
LAMU_CHANNEL_ID = "19:lamu@thread.tacv2"
GUEST = {"name": "Gjest Gjestesen", "email": "gjest@example.org", "userPrincipleName": "gjest@example.org"}


def _teams_user(config: HmsConfig, email: str, n: int) -> dict[str, Any]:
    person = config.person(email)
    assert person is not None, email
    first, _, last = person.name.partition(" ")
    return {"id": f"29:{email.split('@')[0]}", "name": person.name, "email": person.email,
            "userPrincipleName": person.email, "givenName": first, "surname": last or first,
            "aadObjectId": person.entra_object_id or f"00000000-0000-4000-8000-{n:012d}"}


def demo_users(config: HmsConfig, current: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The Playground's current user (a floor contact by default) and exactly five others, one of them unknown: the
    adviser, the floor's section leader and safety representative (who agree on the safety round), the deputy."""
    floor = config.floor("hm-1") or config.floors()[0]
    current = (current or floor.contact or config.roles.hmsb_adviser).lower()
    section = config.section(floor.section)
    wanted = [current, config.roles.hmsb_adviser, section.leader if section else config.roles.unit_head,
              section.safety_rep if section else None, floor.deputy or config.roles.unit_head,
              config.roles.unit_head, *[p.email for p in config.people]]
    emails = list(dict.fromkeys(e for e in wanted if e))[:5]
    users = [_teams_user(config, e, i) for i, e in enumerate(emails)]
    guest = {**GUEST, "id": "29:gjest", "aadObjectId": "00000000-0000-4000-8000-0000000000ff",
             "givenName": "Gjest", "surname": "Gjestesen"}
    return users[0], [*users[1:], guest]


def mock_config(config: HmsConfig, current: str | None = None) -> dict[str, Any]:
    me, others = demo_users(config, current)
    lamu = config.roles.lamu
    return playground.build_mock_config(
        current_user=me, users=others, tenant_id=TENANT_ID, bot=BOT, personal_chat_id=PERSONAL_CHAT,
        team={"id": TEAM_ID, "name": lamu.team_name, "channels": [{"id": LAMU_CHANNEL_ID, "name": lamu.channel_name}]})


def prepare(config: HmsConfig, workdir: Path, current: str | None = None) -> Path:
    """Install the Playground if needed and write its mock data; returns the mock-data file."""
    playground.ensure_installed()
    workdir.mkdir(parents=True, exist_ok=True)
    return playground.write_document(workdir / "playground.yml", mock_config(config, current))


async def run_local(settings: Settings, config: HmsConfig, *, clock: Clock | None, bot_port: int,
                    playground_port: int, mock_path: Path, current: str | None = None) -> None:
    """Start the bot (loopback, local mode) and the Playground; run until the Playground stops or Ctrl-C."""
    app = create_app(settings, config=config, clock=clock,
                     runtime=Runtime(dev=True, dev_bot_id=BOT["id"], dev_tenant_id=TENANT_ID, plan_every=60,
                                     prepare_database=True))
    async with serving(app, settings, "127.0.0.1", bot_port) as site:  # the same limits as `hms-bot serve`
        # said once the socket is bound: a port in use is refused without a word of listening
        print(f"LOCAL MODE: authentication is off; the bot listens on {site.name}/api/messages (loopback only)",
              file=sys.stderr)
        proc = playground.start(f"http://127.0.0.1:{bot_port}/api/messages", port=playground_port,
                                config_path=mock_path, env={"TZ": "Europe/Oslo"})
        try:
            await asyncio.to_thread(playground.wait_ready, playground_port, 60.0, proc=proc)
            print(f"\nHMS-hjulet runs locally. Open http://127.0.0.1:{playground_port} in a browser and chat as "
                  f"{mock_config(config, current)['currentUser']['name']}. Ctrl-C stops.\n", file=sys.stderr)
            await asyncio.to_thread(proc.wait)
            print(f"the Playground stopped (exit {proc.returncode}); see {mock_path.parent / 'playground.out'}",
                  file=sys.stderr)
        finally:
            with contextlib.suppress(Exception):
                playground.stop(proc)

