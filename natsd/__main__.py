"""The ``natsd`` command: parse flags and config, then run the supervisor.

Exit codes follow nats-server: 0 on a clean stop, 1 on configuration or
startup errors (printed as ``file:line:col: reason``, every error at once),
3 when workers repeatedly fail to boot.
"""

from __future__ import annotations

import os
import sys

from natsd import __version__

USAGE = """\
Usage: natsd [options]

natsd is a NATS server; its flags are nats-server's where they overlap.

Server Options:
    -a, --addr, --net <host>         Bind to host address (default: 0.0.0.0)
    -p, --port <port>                Use port for clients (default: 4222, -1: random)
    -n, --name, --server_name <name> Server name (default: auto)
    -P, --pid <file>                 File to store PID
    -m, --http_port <port>           Use port for http monitoring
    -ms,--https_port <port>          Use port for https monitoring
    -c, --config <file>              Configuration file
    -t                               Test configuration and exit
    -sl,--signal <signal>[=<pid>]    Send signal to natsd process (ldm, stop, quit, term, reopen, reload)
        --client_advertise <string>  Client URL to advertise to other servers
        --workers <n>                Worker processes (default: number of CPUs)

Logging Options:
    -l, --log <file>                 File to redirect log output
    -T, --logtime                    Timestamp log entries (default: true)
    -s, --syslog                     Log to syslog or windows event log
    -r, --remote_syslog <addr>       Syslog server addr (udp://127.0.0.1:514)
    -D, --debug                      Enable debugging output
    -V, --trace                      Trace the raw protocol
    -DV                              Debug and trace
    -VV / -DVV                       Verbose trace (natsd: same as -V / -DV)

Authorization Options:
        --user <user>                User required for connections
        --pass <password>            Password required for connections
        --auth <token>               Authorization token required for connections

TLS Options:
        --tls                        Enable TLS, do not verify clients (default: false)
        --tlscert <file>             Server certificate file
        --tlskey <file>              Private key for server certificate
        --tlsverify                  Enable TLS, verify client certificates
        --tlscacert <file>           Client certificate CA for verification

JetStream Options (not yet supported by natsd: accepted with a warning):
    -js, --jetstream                 Enable JetStream functionality
    -sd, --store_dir <dir>           Set the storage directory

Common Options:
    -h, --help                       Show this message
    -v, --version                    Show version
"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    from natsd.config.errors import ConfigErrors
    from natsd.config.load import load

    try:
        cli, opts, warnings = load(args, os.environ)
    except ConfigErrors as e:
        print(f"natsd: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"natsd: {e}", file=sys.stderr)
        return 1
    if cli.action == "help":
        print(USAGE)
        return 0
    if cli.action == "version":
        print(f"natsd: v{__version__}")
        return 0
    for w in warnings:
        print(f"natsd: warning: {w}", file=sys.stderr)
    if cli.action == "check":
        print(f"natsd: configuration file {cli.config_file} is valid")
        return 0
    if cli.action == "signal":
        from supervisor.signals import send_signal

        return send_signal(cli.signal or "", cli.signal_target)
    from supervisor.server import run

    return run(opts, args)


if __name__ == "__main__":
    sys.exit(main())
