"""Load generator and comparison harness for natsd.

The generator speaks the NATS client protocol over raw sockets so that the
measuring side stays much cheaper than the server under test: publishers write
64 KiB chunks of prebuilt ``PUB`` frames, subscribers ``recv_into`` one shared
buffer and count frames with C-speed ``bytearray.count`` instead of parsing
every message.  Load is spread over several processes (``multiprocessing``),
each driving its connections from one ``selectors`` loop.

Modules:

* :mod:`perf.proto`     -- frame building, unit parsing, the incremental parser.
* :mod:`perf.conn`      -- connection set-up (plain/TLS, CONNECT, SUB, PING/PONG).
* :mod:`perf.scenarios` -- turns a scenario name and options into a connection plan.
* :mod:`perf.worker`    -- the per-process event loop that drives a plan slice.
* :mod:`perf.runner`    -- spawns workers, shows progress, gathers results.
* :mod:`perf.servers`   -- launches nats-server/natsd, writes configs, measures RSS.
* :mod:`perf.report`    -- result tables, ratio tables, CSV/JSON, ASCII charts.
* :mod:`perf.loadgen`   -- the command line (``python -m perf.loadgen --help``).
"""
