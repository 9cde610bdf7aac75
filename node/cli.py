"""The `seajust` command: create, introduce, run and inspect a node.

Every failure a user can cause ends as one line on stderr (`seajust: error: ...`) and a
non-zero exit status; tracebacks are for bugs only. The passphrase is read from
--passphrase-file, else SEAJUST_PASSPHRASE, else asked for at the terminal, and never echoed.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from crypto.errors import SeajustError
from crypto.keystore import NodeSecrets, create_keyfile
from node import key_rotation, logs, status, tls
from node.config import (
    DEFAULT_LISTEN,
    NodeConfig,
    NodeHome,
    check_url,
    parse_listen,
    url_for_listen,
    validate,
)
from node.errors import ConfigError, NodeError, NotFound, PassphraseMissing, ValidationError
from node.handover import handover_of
from node.runtime import Node, open_node, tune_collector
from node.storage import Database
from node.tokens import create_token

PASSPHRASE_ENV = "SEAJUST_PASSPHRASE"
USER_PASSWORD_ENV = "SEAJUST_USER_PASSWORD"


def read_passphrase(args: argparse.Namespace, *, confirm: bool = False) -> str:
    path: Path | None = getattr(args, "passphrase_file", None)
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise PassphraseMissing(f"cannot read passphrase file {path}: {exc.strerror}") from exc
        if not text:
            raise PassphraseMissing(f"passphrase file {path} is empty")
        return text
    env = os.environ.get(PASSPHRASE_ENV)
    if env:
        return env
    if not sys.stdin.isatty():
        raise PassphraseMissing()
    first = getpass.getpass("Node passphrase: ")
    if confirm and getpass.getpass("Repeat passphrase: ") != first:
        raise PassphraseMissing("the two passphrases differ")
    if not first:
        raise PassphraseMissing("the passphrase must not be empty")
    return first


@contextmanager
def opened_node(args: argparse.Namespace, passphrase: str | None = None) -> Iterator[Node]:
    """The node of `args.home`, unlocked with the passphrase, closed (and flushed) afterwards."""
    node = open_node(args.home, passphrase if passphrase is not None else read_passphrase(args))
    try:
        yield node
    finally:
        node.close()


def cmd_init(args: argparse.Namespace) -> int:
    home = NodeHome(args.home)
    listen = args.listen or DEFAULT_LISTEN
    parse_listen(listen)
    url = check_url(args.url) if args.url else url_for_listen(listen)
    if args.tls and not args.url:
        url = "https://" + url.removeprefix("http://")
    config = validate(
        {
            "node": {
                "name": args.name,
                "country": args.country.upper(),
                "role": args.role,
                "listen": listen,
                "url": url,
            }
        }
    )
    home.require_new()
    passphrase = read_passphrase(args, confirm=True)
    secrets = NodeSecrets.generate()
    home.create(config)
    create_keyfile(home.keyfile, secrets, passphrase)
    Database(home.database, secrets.db_key).close()
    print(secrets.identity.node_id)
    if args.tls:
        hosts = tls.hosts_for(config.url, config.host)
        digest = tls.make_self_signed(home.path, hosts=hosts, name=config.name, passphrase=passphrase)
        with home.config_path.open("a", encoding="utf-8") as handle:
            handle.write(
                "# A self-signed certificate made by `seajust init --tls`; give your CA's instead if you have one.\n"
                'tls_cert = "tls/cert.pem"\ntls_key = "tls/key.pem"\n'
            )
        print(
            f"TLS certificate SHA-256 fingerprint (check it in the browser the first time): {digest}", file=sys.stderr
        )
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    with opened_node(args) as node:
        print(node.card())
    return 0


def _card_text(value: str) -> str:
    return sys.stdin.read() if value == "-" else value


def cmd_peer_add(args: argparse.Namespace) -> int:
    with opened_node(args) as node:
        peer = node.peers.add_card(_card_text(args.card), actor="cli")
        print(peer.node_id)
    return 0


def cmd_peer_list(args: argparse.Namespace) -> int:
    with opened_node(args) as node:
        peers = node.peers.all()
        if args.json:
            print(json.dumps([p.public_json() for p in peers], indent=2, ensure_ascii=False))
        elif not peers:
            print("no trusted peers yet: add one with `seajust peer add HOME CARD`")
        else:
            for p in peers:
                print(f"{p.node_id}  {p.country}  {p.role:<11}  {p.name}  last sync: {p.last_sync or 'never'}")
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    with opened_node(args) as node:
        print(create_token(node.db, args.label or ""))
    return 0


def cmd_invite_create(args: argparse.Namespace) -> int:
    with opened_node(args) as node:
        code = node.invitations.create(actor="cli")
    print(code)
    print("Read this code to the other authority's admin; it works once, for 24 hours.", file=sys.stderr)
    return 0


def cmd_invite_accept(args: argparse.Namespace) -> int:
    import asyncio

    from node.tls import client_session
    from sync.invite_transport import exchange_claim

    async def claim_at(url: str, claim: dict[str, str], peer_tls: str) -> dict[str, object]:
        async with client_session(peer_tls) as http:
            return await exchange_claim(http, url, claim)

    with opened_node(args) as node:
        claim, state = node.invitations.make_claim(args.code)
        answer = asyncio.run(claim_at(args.url, claim, node.config.peer_tls))
        peer = node.invitations.finish(answer, state, actor="cli")
    print(f"now trusting {peer.name} ({peer.country}), node ID {peer.node_id}")
    return 0


def read_user_password(name: str) -> str:
    """A user's new password: from SEAJUST_USER_PASSWORD, else typed twice at the terminal, never echoed."""
    env = os.environ.get(USER_PASSWORD_ENV)
    if env:
        return env
    if not sys.stdin.isatty():
        raise ValidationError(
            f"no password: set {USER_PASSWORD_ENV} or run in a terminal", fields={"password": "is required"}
        )
    first = getpass.getpass(f"Password for {name}: ")
    if getpass.getpass("Repeat password: ") != first:
        raise ValidationError("the two passwords differ", fields={"password": "the two entries differ"})
    return first


def cmd_user_add(args: argparse.Namespace) -> int:
    with opened_node(args) as node:
        accounts = node.accounts
        accounts.check_new(args.name, args.role)  # before asking for a password that would be refused anyway
        user = accounts.add(args.name, read_user_password(args.name), args.role, actor="cli")
        print(f"user {user.username} added ({user.role})")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    with opened_node(args) as node:
        users = node.accounts.list()
        if args.json:
            print(json.dumps([u.__dict__ for u in users], indent=2, ensure_ascii=False))
        elif not users:
            print("no users yet: add one with `seajust user add HOME NAME --role admin`")
        else:
            for u in users:
                state = "disabled" if u.disabled else "enabled"
                print(f"{u.username:<20}  {u.role:<7}  {state:<8}  last login: {u.last_login or 'never'}")
    return 0


def cmd_user_disable(args: argparse.Namespace) -> int:
    with opened_node(args) as node:
        node.accounts.disable(args.name, actor="cli")
        print(f"user {args.name} disabled; their sessions have ended")
    return 0


def cmd_user_enable(args: argparse.Namespace) -> int:
    with opened_node(args) as node:
        node.accounts.enable(args.name, actor="cli")
        print(f"user {args.name} enabled")
    return 0


def cmd_user_reset(args: argparse.Namespace) -> int:
    with opened_node(args) as node:
        accounts = node.accounts
        if accounts.get(args.name) is None:  # before asking for a password
            raise NotFound(f"no such user: {args.name}")
        accounts.set_password(args.name, read_user_password(args.name), actor="cli")
        print(f"password of {args.name} reset; their sessions have ended")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with opened_node(args) as node:
        summary = status.summarise(node)
    print(json.dumps(summary, indent=2, ensure_ascii=False) if args.json else status.render(summary))
    return 0 if summary["healthy"] else 3


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    passphrase = read_passphrase(args)
    with opened_node(args, passphrase) as node:
        if status.answers(node.config.host, node.config.port):
            raise NodeError("the node is running: stop it first (a key rotation changes its keys and documents)")
        if args.finish:
            rotated = key_rotation.finish(node, node.home.keyfile, passphrase, force=args.force)
            print(
                f"keys rotated ({len(rotated.rotations)} rotation(s) so far); node ID {rotated.node_id} unchanged. "
                "Start the node: it now signs with the new keys."
            )
            return 0
        started = key_rotation.start(node, actor="cli")
        if started.unconfirmed:
            print(
                f"new keys announced; {len(started.unconfirmed)} trusted peer(s) still to confirm them. Start the node "
                "until they have, stop it, then run `seajust keys rotate HOME --finish`."
            )
        else:
            print("new keys announced and confirmed by every trusted peer: run `seajust keys rotate HOME --finish`.")
    return 0


def cmd_user_handover(args: argparse.Namespace) -> int:
    with opened_node(args) as node:
        # The running node holds the case documents in memory and signs their next changes: notes written
        # here behind its back would clash with them, so a running node is asked through its API or UI.
        if status.answers(node.config.host, node.config.port):
            raise NodeError(
                "the node is running: hand over on its Users page or with POST /api/v1/users/NAME/handover, "
                "or stop it first"
            )
        summary = handover_of(node).hand_over(args.name, args.to, actor="cli", disable=args.disable)
        print(
            f"{len(summary.cases)} open case(s) and {len(summary.contacts)} directory entr"
            f"{'y' if len(summary.contacts) == 1 else 'ies'} handed over from {args.name} to {args.to}"
            + (f"; {args.name} disabled" if args.disable else "")
        )
        if summary.unrecorded:
            print(f"not recorded in the shared history or directory: {', '.join(summary.unrecorded)}", file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from node.app import create_app

    passphrase = read_passphrase(args)
    node = open_node(args.home, passphrase)
    tune_collector()
    logs.configure(verbose=args.verbose, log_format=node.config.log_format)
    context = None
    if node.config.tls_cert:
        try:
            context = tls.server_context(node.home.path, node.config.tls_cert, node.config.tls_key, passphrase)
        except ConfigError:
            node.close()
            raise
    scheme = "https" if context is not None else "http"
    if args.listen:
        parse_listen(args.listen)
        url = node.config.url
        try:
            derived = url_for_listen(node.config.listen)
        except ConfigError:
            derived = None
        if url == derived:  # the advertised address followed the old listen address: follow the new one
            url = url_for_listen(args.listen)
        node.config = NodeConfig(**{**node.config.__dict__, "listen": args.listen, "url": url})
    host, port = node.config.host, node.config.port
    app = create_app(node)

    def announce(_: str) -> None:  # called by aiohttp once the port is bound
        print(f"SEAJust node {node.node_id} ({node.config.name}) listening on {scheme}://{host}:{port}", flush=True)
        if context is not None:
            print(f"TLS certificate SHA-256 {tls.cert_fingerprint(node.home.path, node.config.tls_cert)}", flush=True)
        code = node.accounts.setup_code()
        if code is not None:  # the operator's console, not the log: a one-time code to create the first admin
            print(
                f"No web user yet. Create the first admin at {scheme}://{host}:{port}/ui/setup with the one-time "
                f"setup code {code} (valid 24 hours), or run `seajust user add HOME NAME --role admin`.",
                flush=True,
            )

    try:
        web.run_app(
            app, host=host, port=port, print=announce, handle_signals=True, access_log=None, ssl_context=context
        )
    except OSError as exc:
        node.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return 0


def cmd_relay(args: argparse.Namespace) -> int:
    import asyncio

    from sync.relay_server import run_relay
    from sync.relay_store import MIB

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.ttl_days <= 0 or args.max_sender_mb <= 0 or args.max_total_mb <= 0:
        raise ConfigError("--ttl-days, --max-sender-mb and --max-total-mb must be positive")
    try:
        asyncio.run(
            run_relay(
                args.data_dir,
                args.host,
                args.port,
                ttl_seconds=args.ttl_days * 86400.0,
                max_per_sender=args.max_sender_mb * MIB,
                max_total=args.max_total_mb * MIB,
                announce=lambda url: print(f"relay listening on {url}", flush=True),
            )
        )
    except OSError as exc:
        raise ConfigError(f"cannot run the relay on {args.host}:{args.port}: {exc.strerror or exc}") from exc
    return 0


def cmd_dump(args: argparse.Namespace) -> int:
    with opened_node(args) as node:
        for line in node.db.dump_sql():
            sys.stdout.write(line + "\n")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from node.backup import create_backup

    summary = create_backup(args.home, args.file, read_passphrase(args))
    print(
        f"backup of node {summary.node_id} written to {args.file} ({summary.size} bytes, "
        f"{summary.blobs} attachment file(s)); it opens with this node's passphrase"
    )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from node.backup import restore_backup

    summary = restore_backup(args.file, args.home, read_passphrase(args), catch_up=not args.skip_catch_up)
    print(f"node {summary.node_id} restored into {args.home} from its backup of {summary.created_at}")
    if summary.missing_blobs:
        print(f"{summary.missing_blobs} attachment file(s) were not in the backup: they will be fetched from peers")
    if summary.catching_up:
        print(
            "Start it with `seajust run`: it refuses changes until every trusted peer has given back what it "
            "wrote after this backup."
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seajust", description="Run and manage a SEAJust network node.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_)
        sub.set_defaults(handler=handler)
        return sub

    def with_home(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("home", type=Path, metavar="HOME", help="the node's folder")
        sub.add_argument(
            "--passphrase-file",
            type=Path,
            metavar="FILE",
            help=f"read the passphrase from FILE (else ${PASSPHRASE_ENV})",
        )
        return sub

    init = with_home(command("init", cmd_init, "create a node: keys, database and settings in HOME"))
    init.add_argument("--name", required=True, help="display name of this authority")
    init.add_argument("--country", required=True, help="ISO 3166 alpha-2 country code, e.g. TH")
    init.add_argument("--role", choices=("authority", "secretariat"), default="authority")
    init.add_argument("--listen", metavar="HOST:PORT", help=f"where to listen (default {DEFAULT_LISTEN})")
    init.add_argument("--url", help="address peers use to reach this node (default: from --listen)")
    init.add_argument("--tls", action="store_true", help="serve HTTPS with a new self-signed certificate")

    with_home(command("card", cmd_card, "print this node's signed card on one line"))

    peer = commands.add_parser("peer", help="trust and list peers").add_subparsers(
        dest="peer_command", required=True, metavar="SUBCOMMAND"
    )
    add = with_home(
        peer.add_parser("add", help="verify a card and trust its node", description="verify a card and trust its node")
    )
    add.add_argument("card", metavar="CARD", help="the peer's card (SJCARD1....), or - to read it from stdin")
    add.set_defaults(handler=cmd_peer_add)
    plist = with_home(peer.add_parser("list", help="list trusted peers", description="list trusted peers"))
    plist.add_argument("--json", action="store_true", help="print JSON")
    plist.set_defaults(handler=cmd_peer_list)

    token = commands.add_parser("token", help="API tokens").add_subparsers(
        dest="token_command", required=True, metavar="SUBCOMMAND"
    )
    create = with_home(
        token.add_parser("create", help="print a new API bearer token", description="print a new API bearer token")
    )
    create.add_argument("--label", help="what the token is for (stored; the token itself is not)")
    create.set_defaults(handler=cmd_token_create)

    invite = commands.add_parser("invite", help="invitations between nodes").add_subparsers(
        dest="invite_command", required=True, metavar="SUBCOMMAND"
    )
    with_home(
        invite.add_parser(
            "create", help="print a one-time invitation code", description="print a one-time invitation code"
        )
    ).set_defaults(handler=cmd_invite_create)
    accept = with_home(
        invite.add_parser(
            "accept", help="claim another node's invitation", description="claim another node's invitation and trust it"
        )
    )
    accept.add_argument("code", help="the code read to you")
    accept.add_argument("url", help="the inviting node's address, like https://seajust.example.org")
    accept.set_defaults(handler=cmd_invite_accept)

    run = with_home(command("run", cmd_run, "run the node (web API and peer sync) until stopped"))
    run.add_argument("--listen", metavar="HOST:PORT", help="override the configured listen address")
    run.add_argument("--verbose", action="store_true", help="debug logging (never includes content)")

    relay = command("relay", cmd_relay, "run a relay: a mailbox of sealed envelopes for nodes rarely online together")
    relay.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="the relay's folder (created if missing)")
    relay.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    relay.add_argument("--port", type=int, default=9500, help="port to listen on (default 9500)")
    relay.add_argument("--ttl-days", type=float, default=14.0, help="days mail is kept if not fetched (default 14)")
    relay.add_argument("--max-sender-mb", type=int, default=64, help="MiB of mail kept per sending node (default 64)")
    relay.add_argument("--max-total-mb", type=int, default=2048, help="MiB of mail kept in all (default 2048)")

    stat = with_home(command("status", cmd_status, "the node's health: peers, refused input, rotation, sizes"))
    stat.add_argument("--json", action="store_true", help="print JSON")

    keys = commands.add_parser("keys", help="this node's keys").add_subparsers(
        dest="keys_command", required=True, metavar="SUBCOMMAND"
    )
    rotate = with_home(
        keys.add_parser(
            "rotate",
            help="rotate this node's keys, keeping its node ID (two steps; the node must be stopped)",
            description="announce new keys signed by the current ones; then, once peers confirmed, --finish",
        )
    )
    rotate.add_argument("--finish", action="store_true", help="switch to the announced keys")
    rotate.add_argument("--force", action="store_true", help="with --finish: even if some peers have not confirmed")
    rotate.set_defaults(handler=cmd_keys_rotate)

    user = commands.add_parser("user", help="web UI accounts", description="web UI accounts").add_subparsers(
        dest="user_command", required=True, metavar="SUBCOMMAND"
    )

    def user_command(name: str, handler: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        sub = with_home(user.add_parser(name, help=help_, description=help_))
        sub.set_defaults(handler=handler)
        return sub

    uadd = user_command(
        "add", cmd_user_add, f"add a web UI user; the password is read from ${USER_PASSWORD_ENV} or asked for"
    )
    uadd.add_argument("name", metavar="NAME", help="user name: lower-case letters, digits, '.', '_' or '-'")
    uadd.add_argument("--role", default="officer", metavar="officer|admin", help="what the user may do")
    ulist = user_command("list", cmd_user_list, "list web UI users: name, role, enabled or not, last login")
    ulist.add_argument("--json", action="store_true", help="print JSON")
    for name, handler, help_ in (
        ("disable", cmd_user_disable, "stop a user signing in, and end their sessions"),
        ("enable", cmd_user_enable, "let a disabled user sign in again"),
        (
            "reset",
            cmd_user_reset,
            f"set a new password (from ${USER_PASSWORD_ENV} or asked for); ends the user's sessions",
        ),
    ):
        user_command(name, handler, help_).add_argument("name", metavar="NAME", help="user name")
    uhand = user_command(
        "handover",
        cmd_user_handover,
        "hand a user's open cases and linked directory entries to another user (with the node stopped)",
    )
    uhand.add_argument("name", metavar="FROM", help="the user handing over")
    uhand.add_argument("to", metavar="TO", help="the successor: an enabled user")
    uhand.add_argument("--disable", action="store_true", help="then disable FROM and end their sessions")

    with_home(command("dump", cmd_dump, "print the decrypted database as SQL text (for operators and audits)"))

    backup = with_home(
        command("backup", cmd_backup, "write an encrypted backup of the node (it may be running) to FILE")
    )
    backup.add_argument("file", type=Path, metavar="FILE", help="the backup file to write (outside HOME)")
    restore = command("restore", cmd_restore, "restore a node from its backup FILE into a new folder HOME")
    restore.add_argument("file", type=Path, metavar="FILE", help="a backup written by `seajust backup`")
    with_home(restore)
    restore.add_argument(
        "--skip-catch-up",
        action="store_true",
        help="allow changes at once, without first getting back from peers what the node wrote after the backup "
        "(only for a node whose peers hold nothing newer)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except SeajustError as exc:
        print(f"seajust: error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("seajust: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
