"""The use cases: what the unit does with the bot (answer a question, run a round, follow a measure, plan what
to send, deliver it, build the digest, export the record).

Depends on the pure core (`hms`), `storage` and `cards`; driven by the three edges: `bot` (Teams), `scheduler`
(ticks) and `cli` (the command line). Nothing here imports botbuilder, aiohttp or APScheduler: the edges hand
in ports (`usecases.ports`) for what reaches the outside world.
"""
