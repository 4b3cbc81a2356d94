"""Command line of the load generator: ``python -m perf.loadgen SCENARIO [options]``.

Three modes share one scenario engine (:mod:`perf.runner`):

* plain      -- load an already running server at ``--host``/``--port``;
* compare    -- ``--compare`` starts nats-server and natsd on free loopback
                ports, one after the other, runs the identical scenario
                against each (``--repeat`` interleaves rounds and keeps the
                median) and prints a natsd/nats-server ratio table;
* sweep      -- ``--workers-sweep 1,2,4`` runs the scenario against natsd
                once per worker count (plus nats-server as a reference) and
                prints a table, an ASCII chart and CSV/JSON.

Every run is bounded: a message count (default 1M) or ``--duration``, plus a
hard ``--timeout``.  Server configs that a scenario needs (accounts, stream
import, TLS, auth) are generated in a temporary directory in compare/sweep
modes, or written on request with ``--write-accounts-config`` and
``--write-import-config`` for a server you start yourself.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perf import certs, servers
from perf.conn import Creds, Endpoint
from perf.proto import MAX_PAYLOAD, parse_count, parse_duration, parse_size
from perf.report import (
    SWEEP_TARGET,
    RunResult,
    ascii_chart,
    ratio_table,
    results_table,
    sweep_csv,
    table,
    write_json,
)
from perf.runner import run
from perf.scenarios import SCENARIOS, Options, build_plan

EPILOG = """\
scenarios:
  pub           publishers only (default 1 connection)
  pubsub        1:1 publish/subscribe (--pubs/--subs to change)
  fanout        1:N, default 4 subscribers on one subject
  queue         1 publisher, N subscribers in one queue group (--queue)
  reqrep        closed-loop request/reply latency (p50/p99/p99.9) with a responder;
                --pubs = requesters, --subs = responders (queue group)
  conns         --conns idle connections with --subs-per-conn subscriptions each,
                plus 1:1 traffic; reports server RSS (--server-pid, or automatic
                with --compare) summed over the server's process tree
  multiaccount  --accounts K accounts (users u<i>/p<i>), each with its own pubs/subs
  import        account A exports a.>, account B imports it; publish in A, consume in B
  tls           pubsub over TLS (--tls-ca/--tls-cert/--tls-key; --server-cert/-key
                for the server in --compare mode, generated if omitted)

examples:
  python -m perf.loadgen pub --size 16 --msgs 5M --port 4222
  python -m perf.loadgen pubsub --compare --size 1k --duration 5s
  python -m perf.loadgen reqrep --compare --msgs 20k
  python -m perf.loadgen conns --compare --conns 10000 --subs-per-conn 10 --msgs 100k
  python -m perf.loadgen multiaccount --workers-sweep 1,2,4 --accounts 8 --csv sweep.csv
  python -m perf.loadgen --write-accounts-config 8 /tmp/accounts.conf
  python -m perf.loadgen pub --compare --natsd-cmd '/path/nats-server -a 127.0.0.1 -p {port}'
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m perf.loadgen", description=__doc__.split("\n\n")[0],
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", nargs="?", choices=SCENARIOS, help="what load to generate")
    g = p.add_argument_group("load")
    g.add_argument("--size", default="16", help="payload size, 16 B to 64 KB (16, 1k, 64k)")
    g.add_argument("--msgs", default="1M", help="messages in total over all publishers "
                   "(requests for reqrep); 100k, 1M (default 1M)")
    g.add_argument("--duration", default=None,
                   help="run publishers for this long instead of --msgs (5s, 500ms)")
    g.add_argument("--pubs", type=int, help="publishers (per account for multiaccount)")
    g.add_argument("--subs", type=int, help="subscribers (per account for multiaccount)")
    g.add_argument("--subject", default="bench", help="subject (default bench)")
    g.add_argument("--queue", default="q", help="queue group name for queue/reqrep")
    g.add_argument("--accounts", type=int, default=4, help="accounts for multiaccount")
    g.add_argument("--conns", type=int, default=1000, help="idle connections for conns")
    g.add_argument("--subs-per-conn", type=int, default=10,
                   help="subscriptions on each idle connection for conns (default 10)")
    g.add_argument("--rate", type=float, default=0.0,
                   help="pace each publisher to this many msgs/s (0 = as fast as possible)")
    g.add_argument("--procs", type=int, default=2, help="generator processes (default 2)")
    g.add_argument("--quiet", type=float, default=1.0, dest="quiet_s",
                   help="stop waiting for subscribers after this many seconds without "
                   "progress once publishers are done (default 1)")
    g.add_argument("--timeout", default="120s", help="hard cap on the measured phase")
    g = p.add_argument_group("server to load (plain mode)")
    g.add_argument("--host", default="127.0.0.1")
    g.add_argument("--port", type=int, default=4222)
    g.add_argument("--server-pid", type=int, help="pid whose process tree RSS is reported")
    g.add_argument("--user", help="username for CONNECT")
    g.add_argument("--password", help="password for CONNECT")
    g.add_argument("--token", help="auth token for CONNECT")
    g.add_argument("--tls", action="store_true", help="use TLS on every connection")
    g.add_argument("--tls-ca", help="CA bundle to verify the server")
    g.add_argument("--tls-cert", help="client certificate (mutual TLS)")
    g.add_argument("--tls-key", help="client key (mutual TLS)")
    g.add_argument("--tls-insecure", action="store_true", help="skip server verification")
    g = p.add_argument_group("compare / sweep")
    g.add_argument("--compare", action="store_true",
                   help="start nats-server and natsd, run against both, print ratios")
    g.add_argument("--workers", type=int, default=1, help="natsd --workers (default 1)")
    g.add_argument("--workers-sweep", help="comma list of natsd worker counts, e.g. 1,2,4")
    g.add_argument("--natsd-cmd", help="natsd command template; {port} {workers} {python} "
                   "are substituted, '-c CONFIG' is appended when needed")
    g.add_argument("--nats-server", help="nats-server binary (default: next to python, PATH)")
    g.add_argument("--repeat", type=int, default=1, help="rounds per target; median is kept")
    g.add_argument("--server-cert", help="server certificate for tls in compare mode")
    g.add_argument("--server-key", help="server key for tls in compare mode")
    g.add_argument("--server-start-timeout", type=float, default=30.0)
    g = p.add_argument_group("output")
    g.add_argument("--json", help="write results (and ratios) as JSON to this file")
    g.add_argument("--csv", help="write the sweep/compare series as CSV to this file")
    g.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    g = p.add_argument_group("config writers (then exit)")
    g.add_argument("--write-accounts-config", nargs=2, metavar=("K", "PATH"),
                   help="write a config with K accounts A<i>, users u<i>/p<i>")
    g.add_argument("--import-accounts", default="A,B", metavar="EXP,IMP",
                   help="account names for import/svcimport (natsd places accounts on "
                   "workers by name: e.g. EXP,IMP land apart with --workers 2)")
    g.add_argument("--write-import-config", metavar="PATH",
                   help="write a config where A exports a.> and B imports it")
    return p


def options_from(args: argparse.Namespace) -> Options:
    size = parse_size(args.size)
    if not 1 <= size <= MAX_PAYLOAD:
        raise SystemExit(f"--size must be 1 B..64 KB, got {args.size}")
    if any(bad in args.subject for bad in ("MSG ", "PING", "-ERR", " ")):
        raise SystemExit("--subject must not contain spaces, 'PING' or '-ERR' "
                         "(subscribers count frames by those byte patterns)")
    tls = args.tls or args.scenario == "tls"
    ep = Endpoint(host=args.host, port=args.port, tls=tls, tls_ca=args.tls_ca,
                  tls_cert=args.tls_cert, tls_key=args.tls_key, tls_insecure=args.tls_insecure)
    if args.scenario == "conns":
        ep.connect_timeout = 60.0
    return Options(
        scenario=args.scenario, endpoint=ep,
        creds=Creds(user=args.user, password=args.password, token=args.token),
        size=size, msgs=parse_count(args.msgs),
        duration=parse_duration(args.duration) if args.duration else 0.0,
        pubs=args.pubs, subs=args.subs, subject=args.subject, queue=args.queue,
        accounts=args.accounts, conns=args.conns, subs_per_conn=args.subs_per_conn,
        rate=args.rate, procs=args.procs, quiet_s=args.quiet_s,
        timeout=parse_duration(args.timeout), server_pid=args.server_pid,
        progress=not args.no_progress,
        import_accounts=_pair(args.import_accounts))


def _pair(text: str) -> tuple[str, str]:
    names = [n.strip() for n in text.split(",")]
    if len(names) != 2 or not all(names) or names[0] == names[1]:
        raise SystemExit(f"--import-accounts takes two different names, got {text!r}")
    return names[0], names[1]


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


def server_config(opts: Options, args: argparse.Namespace, tmp: Path) -> Path | None:
    """Config text for what the scenario needs; also points TLS clients at the CA."""
    needs = build_plan(opts).needs
    parts: list[str] = []
    if needs == "accounts":
        parts.append(servers.accounts_config(opts.accounts))
    elif needs == "import":
        parts.append(servers.import_config(opts.import_accounts))
    else:
        parts.append(servers.auth_config(opts.creds.user, opts.creds.password,
                                         opts.creds.token))
    if opts.endpoint.tls:
        if args.server_cert:
            cert, key = args.server_cert, args.server_key
        else:
            made = certs.generate(tmp / "certs")
            cert, key = made["cert"], made["key"]
            opts.endpoint.tls_ca = opts.endpoint.tls_ca or made["ca"]
        parts.append(servers.tls_config(cert, key))
    text = "".join(parts)
    return servers.write_config(tmp / "server.conf", text) if text else None


Launcher = Callable[[int], list[str]]


def run_against(name: str, argv_for: Launcher, opts: Options, args: argparse.Namespace,
                workers: int | None = None) -> RunResult:
    port = servers.free_port()
    srv = servers.ServerProc(name, argv_for(port), port, args.server_start_timeout)
    with srv:
        opts.endpoint.port, opts.endpoint.host = port, "127.0.0.1"
        opts.server_pid = srv.pid
        res = run(opts, label=name if workers is None else f"{name} w={workers}")
        res.workers = workers
        return res


def median_result(results: list[RunResult]) -> RunResult:
    if len(results) == 1:
        return results[0]
    med = statistics.median_low([r.primary for r in results])
    return next(r for r in results if r.primary == med)


def compare(opts: Options, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    cfg = server_config(opts, args, tmp)
    targets: list[tuple[str, Launcher, int | None]] = [
        ("nats-server", lambda port: servers.nats_server_argv(port, cfg, args.nats_server), None)]
    sweep = [int(w) for w in args.workers_sweep.split(",")] if args.workers_sweep else None
    def natsd_launcher(workers: int) -> Launcher:
        return lambda port: servers.natsd_argv(port, workers, cfg, args.natsd_cmd)

    for w in sweep or [args.workers]:
        targets.append(("natsd", natsd_launcher(w), w if sweep else None))
    rounds: dict[int, list[RunResult]] = {i: [] for i in range(len(targets))}
    for _ in range(max(1, args.repeat)):
        for i, (name, argv_for, sweep_w) in enumerate(targets):
            rounds[i].append(run_against(name, argv_for, opts, args, sweep_w))
    results = [median_result(rounds[i]) for i in range(len(targets))]
    print(results_table(results))
    out: dict[str, Any] = {"results": [r.to_dict() for r in results]}
    if sweep:
        out["sweep"] = sweep_report(results, args)
    else:
        print("\nnatsd / nats-server")
        print(ratio_table(results[1], results[0]))
    return out


def sweep_report(results: list[RunResult], args: argparse.Namespace) -> dict[str, Any]:
    ref, series = results[0], results[1:]
    print(f"\nthroughput vs natsd workers ({series[0].scenario}, primary metric msgs/s)")
    print(ascii_chart([(r.target, r.primary) for r in results]))
    base = series[0].primary or 1.0
    rows: list[tuple[str, ...]] = [("workers", "msgs/s", "vs first", "vs nats-server")]
    for r in series:
        rows.append((str(r.workers), f"{r.primary:,.0f}", f"{r.primary / base:.2f}x",
                     f"{r.primary / (ref.primary or 1.0):.2f}x"))
    print("\n" + table(rows))
    if len(series) > 1 and series[0].workers == 1 and series[1].workers == 2:
        print(f"  target: workers=2 / workers=1 >= {SWEEP_TARGET}x "
              f"({'met' if series[1].primary / base >= SWEEP_TARGET else 'MISSED'})")
    text = sweep_csv(results)
    if args.csv:
        Path(args.csv).write_text(text)
    return {"csv": text}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.write_accounts_config or args.write_import_config:
        if args.write_accounts_config:
            k, path = args.write_accounts_config
            servers.write_config(path, servers.accounts_config(int(k)))
            print(f"wrote {path}: accounts A0..A{int(k) - 1}, users u<i>/p<i>")
        if args.write_import_config:
            servers.write_config(args.write_import_config, servers.import_config(_pair(args.import_accounts)))
            print(f"wrote {args.write_import_config}: A (ua/pa) exports a.>, "
                  "B (ub/pb) imports it")
        return 0
    if not args.scenario:
        build_parser().error("a scenario is required")
    opts = options_from(args)
    if opts.scenario == "conns":
        raise_nofile()
    out: dict[str, Any] = {"argv": sys.argv[1:] if argv is None else argv}
    if args.compare or args.workers_sweep:
        tmp = Path(tempfile.mkdtemp(prefix="perf-loadgen-"))
        try:
            out.update(compare(opts, args, tmp))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        results = [run(opts) for _ in range(max(1, args.repeat))]
        print(results_table(results))
        out["results"] = [r.to_dict() for r in results]
    if args.json:
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
