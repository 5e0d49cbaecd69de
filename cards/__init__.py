"""Adaptive Cards (schema 1.5): one pure function per card, from a view model and a locale to a dict; typed,
signed card action payloads. Imports only the core (`hms`)."""
