"""The Teams app package an admin uploads in Teams admin center (`hms-bot manifest`)."""
