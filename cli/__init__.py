"""The command line (`hms-bot`): one edge of the use cases, beside the Teams bot and the scheduler."""
