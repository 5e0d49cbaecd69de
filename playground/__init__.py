"""The local Teams: the Microsoft 365 Agents Playground (npm, in this folder), the guard it always runs behind
(`guard.cjs`: loopback only), its launcher, and `hms-bot local`, which runs the bot beside it."""
