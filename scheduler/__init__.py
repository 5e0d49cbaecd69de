"""The scheduler only ticks: APScheduler fires the planning and delivery jobs (`jobs`); what they do lives in
`usecases.planning` and `usecases.delivery`."""
