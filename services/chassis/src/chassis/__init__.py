"""What the oppstream services share to run, as opposed to what they say (`contracts`): Kafka,
HTTP, SQL stores, settings, who a request is from, and serving under uvicorn."""
