"""`make chaos`: the whole platform on private PostgreSQL and Redis, fed signed events while
workers, Redis and PostgreSQL are killed, then checked for lost, duplicated and stuck work."""
