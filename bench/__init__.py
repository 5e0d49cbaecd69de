"""Turn-throughput benchmark: bare aiohttp vs the stock botbuilder echo bot vs HMS-hjulet (`python -m bench`)."""
