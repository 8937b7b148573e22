"""The ``incoming`` script's work, served by panoramisk's FastAGI, for bench.agi_cpu.

    python -m bench.panoramisk_incoming PORT REDIS_URL

The same work as linkgw's ``incoming``: one ``GET FULL VARIABLE`` of the same composite
expression (the channel's identity and the caller ID, base64), the call's record written
to Redis by the same Lua script, and the answer set with ``SET VARIABLE``. Each session
logs one line, as linkgw's does: panoramisk's own "Received FastAGI request" at INFO,
written to standard output by the ``logging`` module.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import sys
import time

from panoramisk.fast_agi import Application, Request  # type: ignore[import-untyped]
from redis.asyncio import Redis

from gateway.bridge.change import Change, Index
from gateway.bridge.redis_store import APPLY_CHANGE, script_call
from gateway.schema import Keys, call_record, idx_calls_caller
from gateway.transfer.channel import PARTY, _terms

NAMES = ("uniqueid", "linkedid", "endpoint", "number", "name", "exact")


async def main(port: int, url: str) -> None:
    redis = Redis.from_url(url)
    script = redis.register_script(APPLY_CHANGE)
    keys = Keys("linkgw")

    async def incoming(request: Request) -> None:
        token = secrets.token_hex(8)
        expression = ",".join([f"${{BASE64_ENCODE(={token})}}", *_terms(PARTY)])
        got = await request.send_command(f'GET FULL VARIABLE "{expression}"')
        text = got.get("result", ("", ""))[1]
        values = [base64.b64decode(v)[1:].decode("utf-8", "replace")
                  for v in text.split(",") if v]
        if not values or values[0] != token:
            raise ValueError("not this read's answer")
        fields = dict(zip(NAMES, values[1:], strict=False))
        at = time.time()
        change = Change(call_record(request.headers.get("agi_uniqueid", "")),
                        "call_registered", at, fields,
                        (Index(idx_calls_caller(fields.get("number", "")), "u", at),))
        redis_keys, args = script_call(keys, change, 1_000_000)
        await script(keys=redis_keys, args=args)  # type: ignore[arg-type]
        await request.send_command('SET VARIABLE "LINKGW_ANSWER" "OK||"')

    app = Application(loop=asyncio.get_running_loop())
    app.add_route("incoming", incoming)
    server = await asyncio.start_server(app.handler, "127.0.0.1", port)
    print("panoramisk listening", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
