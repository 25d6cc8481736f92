"""python -m chaos --events N: exit 0 only with nothing lost, duplicated or stuck."""

import argparse
import sys

from chaos.run import Plan, Run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--fault-seconds", type=float, default=120.0, help="how long events and faults go on")
    parser.add_argument("--kill-every", type=float, default=8.0, help="SIGKILL a worker process this often (s)")
    parser.add_argument("--postgres-stop", type=float, default=10.0, help="seconds PostgreSQL is down (0: never)")
    parser.add_argument("--no-redis-restart", action="store_true")
    parser.add_argument("--quiescence-timeout", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and its logs")
    args = parser.parse_args()
    plan = Plan(
        events=args.events,
        fault_seconds=args.fault_seconds,
        kill_every=args.kill_every,
        postgres_stop=args.postgres_stop,
        redis_restart=not args.no_redis_restart,
        quiescence_timeout=args.quiescence_timeout,
        keep=args.keep,
    )
    run = Run(plan)
    try:
        return run.execute()
    finally:
        run.cleanup()


if __name__ == "__main__":
    sys.exit(main())
