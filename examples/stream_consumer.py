"""Follows fulfil's event stream on NATS JetStream and prints each order's
status changes, one line each: `<order id> <status> <event number>`.

A consumer in another language needs only the documented format
(docs/events.md) and a NATS client (here nats-py: `pip install nats-py`).
It reads with a durable consumer of its own: stopped and started again
under the same --durable name, it goes on after the last event it
acknowledged, and sees every event at least once.

    python3 examples/stream_consumer.py --server nats://127.0.0.1:4222

--order keeps to one order; --until ends after that order reaches the
given status (for scripts and tests); --idle ends after that many seconds
without an event.
"""

import argparse
import asyncio
import json
import sys

import nats
import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

# The format versions this consumer reads.
KNOWN_VERSIONS = {1}


async def follow(args):
    nc = await nats.connect(args.server)
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        f"{args.subject}.*",
        durable=args.durable,
        stream=args.stream,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL),
    )
    idle = 0.0
    try:
        while args.idle is None or idle < args.idle:
            try:
                messages = await sub.fetch(batch=256, timeout=1)
            except nats.errors.TimeoutError:
                idle += 1
                continue
            idle = 0.0
            for msg in messages:
                event = json.loads(msg.data)
                if event["v"] not in KNOWN_VERSIONS:
                    # A newer format: say so, and leave it to a newer consumer.
                    print(f"skipping event {event.get('seq')} of format v{event['v']}", file=sys.stderr)
                elif "status" in event and args.order in (None, event["correlation_id"]):
                    print(f"{event['correlation_id']} {event['status']} {event['seq']}", flush=True)
                    if event["status"] == args.until and args.order is not None:
                        await msg.ack()
                        return
                await msg.ack()
    finally:
        await nc.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="nats://127.0.0.1:4222")
    parser.add_argument("--stream", default="FULFIL")
    parser.add_argument("--subject", default="fulfil.events")
    parser.add_argument("--durable", default="status-printer")
    parser.add_argument("--order")
    parser.add_argument("--until")
    parser.add_argument("--idle", type=float)
    asyncio.run(follow(parser.parse_args()))


if __name__ == "__main__":
    main()
