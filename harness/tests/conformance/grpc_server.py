"""A grpcio (grpc.aio) server of the project's Target service for harness/tests/conformance.rs.

Run with the venv of targets/python/build.sh:

    python grpc_server.py PROTO_ROOT

The .proto under PROTO_ROOT (leakgate/target/v1/target.proto) is compiled when the server
starts, by grpcio-tools (grpc.protos_and_services): no generated code is kept. The server
allows two concurrent streams per connection (grpc.max_concurrent_streams = 2), listens on a
port of 127.0.0.1 picked by the kernel and prints "listening PORT" once it serves.

Every call first waits HOLD (2 ms), as a handler that does some work: at a few hundred calls
per second on one connection, more calls than the limit then want to be in flight at once.

    Get    {"key": "missing"}: aborts with NOT_FOUND before any message, which grpcio sends as
           a trailers-only response (one HEADERS frame holding grpc-status); any other key:
           GetReply {hit: true, size: len(key)}
    Watch  three WatchEvents {key, seq: 1..3}, then OK
    Put, Proxy  UNIMPLEMENTED (grpcio's default)
"""

import asyncio
import sys

import grpc

MISSING = "missing"
WATCH_EVENTS = 3
HOLD = 0.002


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) == 2 else 64)
    sys.path.insert(0, sys.argv[1])
    protos, services = grpc.protos_and_services("leakgate/target/v1/target.proto")

    class Target(services.TargetServicer):
        async def Get(self, request, context):
            await asyncio.sleep(HOLD)
            if request.key == MISSING:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"no key {request.key}")
            return protos.GetReply(hit=True, size=len(request.key))

        async def Watch(self, request, context):
            await asyncio.sleep(HOLD)
            for seq in range(1, WATCH_EVENTS + 1):
                yield protos.WatchEvent(key=request.key, seq=seq)

    async def serve() -> None:
        server = grpc.aio.server(options=[("grpc.max_concurrent_streams", 2)])
        services.add_TargetServicer_to_server(Target(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print(f"listening {port}", flush=True)
        await server.wait_for_termination()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
