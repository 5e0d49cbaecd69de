"""The pure core: the organisation file and its validation, the wheel, working days, periods, reminder policy,
language understanding and texts. Plain Python: imports none of our other packages, no web, database or
scheduler library; time is an argument."""
