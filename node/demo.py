"""`make demo`: three SEAJust nodes on this machine, introduced to each other, with a few contact points.

The nodes live in ./demo (relative to the current directory): the Thai Office of the Attorney
General, the Supreme People's Procuracy of Viet Nam and the SEAJust Secretariat. Everything is
done the way an operator would do it, with the `seajust` command (`init`, `card`, `peer add`,
`token create`, `run`) in subprocesses, and the contact points go in through the JSON API.
Running it again reuses ./demo: same nodes, same data, a fresh API token each.

The nodes listen on 127.0.0.1 only, on 8471-8473 when those are free. A node's address is
fixed when it is created (it is on the card its peers trust), so a reused node whose port is
now taken is not moved: the demo says so and stops.

Stop it with Ctrl-C: the nodes are stopped (SIGTERM, then SIGKILL after a timeout) before it exits.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final, TypeVar

from crypto.card import parse_card
from node.cli import USER_PASSWORD_ENV
from node.config import NodeHome

DEMO_DIR: Final = Path("demo")
PASSPHRASE: Final = "seajust-demo-passphrase-not-for-real-nodes"
PASSPHRASE_ENV: Final = "SEAJUST_PASSPHRASE"
HOST: Final = "127.0.0.1"
START_TIMEOUT: Final = 30.0
REPLICATION_TIMEOUT: Final = 20.0
STOP_TIMEOUT: Final = 8.0  # seconds the nodes get to stop cleanly before they are killed

T = TypeVar("T")

# Web logins on every demo node, all with one demo password (printed; never do this on a real node).
DEMO_LOGINS: Final = (("officer", "officer"), ("admin", "admin"))
DEMO_PASSWORD: Final = "demo-password-123"


@dataclass(frozen=True)
class DemoNode:
    """One node of the demo network and the contact points its officers publish."""

    folder: str
    name: str
    country: str
    role: str
    preferred_port: int
    contacts: tuple[dict[str, Any], ...] = ()


NODES: Final = (
    DemoNode(
        folder="thailand-oag",
        name="Thailand — Office of the Attorney General",
        country="TH",
        role="authority",
        preferred_port=8471,
        contacts=(
            {
                "name": "Somchai Rattanakul",
                "title": "Senior Public Prosecutor, Office of International Affairs",
                "authority": "Office of the Attorney General, Thailand",
                "expertise": ["extradition", "mutual legal assistance"],
                "languages": ["th", "en"],
                "email": "somchai.r@oag-th.example",
                "phone": "+66 2 000 0101",
            },
            {
                "name": "Kanokwan Srisuk",
                "title": "Public Prosecutor, Office of International Affairs",
                "authority": "Office of the Attorney General, Thailand",
                "expertise": ["asset recovery", "money laundering", "mutual legal assistance"],
                "languages": ["th", "en"],
                "email": "kanokwan.s@oag-th.example",
                "phone": "+66 2 000 0102",
            },
        ),
    ),
    DemoNode(
        folder="vietnam-spp",
        name="Viet Nam — Supreme People's Procuracy",
        country="VN",
        role="authority",
        preferred_port=8472,
        contacts=(
            {
                "name": "Nguyen Thi Lan",
                "title": "Prosecutor, Department of International Cooperation and Mutual Legal Assistance",
                "authority": "Supreme People's Procuracy of Viet Nam",
                "expertise": ["cybercrime", "electronic evidence"],
                "languages": ["vi", "en"],
                "email": "nguyen.thi.lan@spp-vn.example",
                "phone": "+84 24 0000 0201",
            },
            {
                "name": "Tran Van Minh",
                "title": "Deputy Head of Division, Mutual Legal Assistance in Criminal Matters",
                "authority": "Supreme People's Procuracy of Viet Nam",
                "expertise": ["trafficking in persons", "mutual legal assistance", "extradition"],
                "languages": ["vi", "en"],
                "email": "tran.van.minh@spp-vn.example",
                "phone": "+84 24 0000 0202",
            },
        ),
    ),
    DemoNode(
        folder="secretariat",
        name="SEAJust Secretariat (UNODC)",
        country="TH",
        role="secretariat",
        preferred_port=8473,
    ),
)


class DemoError(Exception):
    """Something the person running the demo has to fix; printed as one line, exit status 1."""


class Stop(BaseException):
    """SIGINT or SIGTERM arrived: stop the nodes and leave (a BaseException, so nothing swallows it)."""


@dataclass
class Running:
    """A demo node as set up on this run."""

    spec: DemoNode
    home: Path
    port: int
    created: bool
    node_id: str = ""
    token: str = ""
    card: str = ""
    trusted: set[str] = field(default_factory=set)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home.parent / f"{self.spec.folder}.log"


def say(text: str = "") -> None:
    print(text, flush=True)


def child_env() -> dict[str, str]:
    return {**os.environ, PASSPHRASE_ENV: PASSPHRASE, "PYTHONUNBUFFERED": "1"}


def seajust(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    """Run one `seajust` command to completion; its stdout, or DemoError with its error line."""
    result = subprocess.run(
        [sys.executable, "-m", "node.cli", *args],
        env={**child_env(), **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or [f"exit status {result.returncode}"]
        raise DemoError(f"`seajust {args[0]} ...` failed: {detail[0]}")
    return result.stdout.strip()


def in_parallel(work: Callable[[Running], T], nodes: Sequence[Running]) -> list[T]:
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        return list(pool.map(work, nodes))


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def any_free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def plan(base: Path) -> list[Running]:
    """Reuse the demo nodes in `base`, or choose ports for new ones; refuse a half-made or blocked demo."""
    homes = [NodeHome(base / spec.folder) for spec in NODES]
    existing = [home.exists() for home in homes]
    if any(existing) and not all(existing):
        raise DemoError(f"{base} holds only some of the demo nodes: remove it (rm -rf {base}) and run the demo again")
    if all(existing):
        nodes = []
        for spec, home in zip(NODES, homes, strict=True):
            config = home.load_config()
            if not port_is_free(config.port):
                raise DemoError(
                    f"port {config.port} of {spec.name} ({home.path}) is in use: stop the program using it "
                    f"(an earlier demo?), or remove the demo (rm -rf {base}) to start afresh on free ports"
                )
            nodes.append(Running(spec, home.path, config.port, created=False))
        return nodes
    for home in homes:
        if home.path.exists() and any(home.path.iterdir()):
            raise DemoError(f"{home.path} is not empty but holds no node: remove it (rm -rf {base}) and run again")
    taken: set[int] = set()
    nodes = []
    for spec, home in zip(NODES, homes, strict=True):
        port = spec.preferred_port if port_is_free(spec.preferred_port) else any_free_port()
        while port in taken:
            port = any_free_port()
        taken.add(port)
        nodes.append(Running(spec, home.path, port, created=True))
    return nodes


def prepare(node: Running) -> None:
    """Create the node if new; read its card and the peers it trusts already."""
    if node.created:
        spec = node.spec
        node.node_id = seajust(
            "init",
            str(node.home),
            "--name",
            spec.name,
            "--country",
            spec.country,
            "--role",
            spec.role,
            "--listen",
            f"{HOST}:{node.port}",
        )
    else:
        node.trusted = {peer["node_id"] for peer in json.loads(seajust("peer", "list", str(node.home), "--json"))}
    node.card = seajust("card", str(node.home))
    node.node_id = parse_card(node.card).node_id


def introduce_and_token(node: Running, everyone: Sequence[Running]) -> None:
    """Trust every other demo node this one does not trust yet, make a fresh API token, and the web logins."""
    for other in everyone:
        if other is not node and other.node_id not in node.trusted:
            seajust("peer", "add", str(node.home), "-", stdin=other.card)
            node.trusted.add(other.node_id)
    node.token = seajust("token", "create", str(node.home), "--label", "demo")
    existing = {user["username"] for user in json.loads(seajust("user", "list", str(node.home), "--json"))}
    for username, role in DEMO_LOGINS:
        if username not in existing:
            seajust("user", "add", str(node.home), username, "--role", role, env={USER_PASSWORD_ENV: DEMO_PASSWORD})


def api(node: Running, method: str, path: str, body: Any = None, timeout: float = 5.0) -> Any:
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(node.url + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {node.token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", errors="replace")
        raise DemoError(f"{method} {node.url}{path} answered HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DemoError(f"{node.spec.name} did not answer {method} {path}: {exc}") from None
    return json.loads(raw) if raw else None


def describe_log(node: Running, lines: int = 15) -> str:
    """The end of a node's log, for an error message."""
    try:
        text = node.log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"It wrote no log ({node.log_path})."
    tail = "\n".join("    " + line for line in text.splitlines()[-lines:])
    return f"The end of its log ({node.log_path}):\n{tail}"


def start(node: Running) -> None:
    with open(node.log_path, "ab") as log:
        node.proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "run", str(node.home)],
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the demo only, which stops each node once
        )


def exited(node: Running) -> bool:
    return node.proc is not None and node.proc.poll() is not None


def wait_healthy(nodes: Sequence[Running]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    waiting = list(nodes)
    while waiting:
        for node in list(waiting):
            if exited(node):
                raise DemoError(f"{node.spec.name} stopped while starting. {describe_log(node)}")
            try:
                with urllib.request.urlopen(node.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        waiting.remove(node)
            except (urllib.error.URLError, OSError):
                pass
        if waiting and time.monotonic() > deadline:
            names = ", ".join(n.spec.name for n in waiting)
            raise DemoError(f"no answer from {names} after {START_TIMEOUT:.0f} s; see the logs in {DEMO_DIR}")
        time.sleep(0.1)


def seed(node: Running) -> int:
    """Publish the node's demo contact points unless it has published some already; how many were added."""
    if not node.spec.contacts:
        return 0
    if any(c["owner"] == node.node_id for c in api(node, "GET", "/api/v1/contacts")):
        return 0
    for contact in node.spec.contacts:
        api(node, "POST", "/api/v1/contacts", contact)
    return len(node.spec.contacts)


PROFILES: Final[dict[str, dict[str, Any]]] = {
    "TH": {
        "authority": "Office of the Attorney General, Central Authority of Thailand",
        "languages": ["th", "en"],
        "legal_bases": ["asean_mlat", "untoc", "uncac", "un_drugs_1988", "bilateral_treaty", "reciprocity"],
        "treaties": ["ASEAN Treaty on Mutual Legal Assistance in Criminal Matters (2004)", "UNTOC", "UNCAC"],
        "requirements": {
            "asset_freezing": ["court_order", "asset_offence_link", "asset_details"],
            "bank_records": ["account_details", "link_to_offence"],
        },
        "execution_days": {"bank_records": 90, "asset_freezing": 120, "statement": 60},
        "urgent_channel": "24/7 duty prosecutor: +66 2 000 0199, urgent@oag-th.example",
    },
    "VN": {
        "authority": "Supreme People's Procuracy of Viet Nam, Central Authority for MLA",
        "languages": ["vi", "en"],
        "legal_bases": ["asean_mlat", "untoc", "uncac", "reciprocity"],
        "treaties": ["ASEAN Treaty on Mutual Legal Assistance in Criminal Matters (2004)", "UNTOC", "UNCAC"],
        "requirements": {
            "electronic_evidence": ["data_preservation_reference", "link_to_offence"],
            "statement": ["questions", "procedure"],
        },
        "execution_days": {"electronic_evidence": 45, "statement": 75},
        "urgent_channel": "+84 24 0000 0299 (MLA duty officer)",
    },
}


def seed_cases(nodes: Sequence[Running]) -> int:
    """Country profiles and a few cases between Thailand and Viet Nam, unless the Thai node has cases already."""
    th, vn = nodes[0], nodes[1]
    for node in (th, vn):
        api(node, "PUT", f"/api/v1/profiles/{node.spec.country}", PROFILES[node.spec.country])
    if api(th, "GET", "/api/v1/cases"):
        return 0
    mla = api(
        th,
        "POST",
        "/api/v1/cases",
        {
            "kind": "mla",
            "counterpart": vn.node_id,
            "reference": "OAG-IA-2026-0117",
            "summary": "Online investment fraud run from Bangkok; proceeds moved through accounts in Ha Noi. "
            "Bank records of three accounts are requested.",
            "offences": ["fraud", "money_laundering"],
            "measures": ["bank_records"],
            "legal_basis": ["asean_mlat"],
            "urgency": "normal",
            "requested_by": "2027-03-31",
            "languages": ["en"],
            "provided": ["summary_of_facts", "link_to_offence", "account_details"],
        },
    )
    api(th, "POST", f"/api/v1/cases/{mla['id']}/transitions", {"to": "sent", "reason": ""})
    api(
        th,
        "POST",
        f"/api/v1/cases/{mla['id']}/notes",
        {"text": "Account holders may move funds; please treat as confidential."},
    )
    consultation = api(
        vn,
        "POST",
        "/api/v1/cases",
        {
            "kind": "consultation",
            "counterpart": th.node_id,
            "reference": "SPP-HTQT-2026-42",
            "summary": "Before a formal request: would Thailand need a court order to preserve subscriber data "
            "held by a Thai provider in a cybercrime case?",
            "offences": ["cybercrime"],
            "languages": ["en"],
        },
    )
    api(vn, "POST", f"/api/v1/cases/{consultation['id']}/transitions", {"to": "sent", "reason": ""})
    api(
        th,
        "POST",
        "/api/v1/cases",
        {
            "kind": "extradition",
            "counterpart": vn.node_id,
            "reference": "OAG-EX-2026-009",
            "summary": "Draft extradition request for a fugitive convicted of trafficking in persons.",
            "offences": ["trafficking_in_persons"],
            "measures": ["provisional_arrest"],
            "legal_basis": ["reciprocity"],
            "urgency": "urgent",
            "urgency_reason": "The person is expected to leave Viet Nam within weeks.",
            "languages": ["en"],
        },
    )
    return 3


def found_network(nodes: Sequence[Running]) -> bool:
    """The secretariat founds the roster (Network page) with the two authorities; False if it already had."""
    secretariat = next(n for n in nodes if n.spec.role == "secretariat")
    if api(secretariat, "GET", "/api/v1/roster")["network"] is not None:
        return False
    api(secretariat, "POST", "/api/v1/roster/found", {"network": "SEAJust (demo)"})
    return True


def wait_replicated(nodes: Sequence[Running]) -> bool:
    """Until every node lists the same contact points (the nodes dial each other within seconds)."""
    deadline = time.monotonic() + REPLICATION_TIMEOUT
    while time.monotonic() < deadline:
        seen = [{c["id"] for c in api(node, "GET", "/api/v1/contacts")} for node in nodes]
        if all(ids == seen[0] for ids in seen):
            return True
        time.sleep(0.2)
    return False


def show(nodes: Sequence[Running], replicated: bool) -> None:
    th, vn = nodes[0], nodes[1]
    count = len(api(th, "GET", "/api/v1/contacts"))
    say()
    say("=" * 100)
    say("SEAJust demo network is running: three nodes on this machine, each trusting the other two.")
    say("=" * 100)
    for node in nodes:
        say()
        say(f"{node.spec.name}  [{node.spec.country}, {node.spec.role}]")
        say(f"  URL        {node.url}")
        say(f"  Web UI     {node.url}/ui/   logins: officer / {DEMO_PASSWORD}  and  admin / {DEMO_PASSWORD}")
        say(f"  Node ID    {node.node_id}")
        say(f"  API token  {node.token}")
        say(f"  Home       {node.home}   (log: {node.log_path})")
    say()
    if replicated:
        say(f"Contact directory: {count} contact points, the same on all three nodes.")
    else:
        say("Contact directory: the nodes are still exchanging contact points; list them again in a few seconds.")
    say()
    say("Try it (the Thai node's token; each node has its own):")
    say()
    say("  # list the contact points the Thai node knows (its own and Viet Nam's)")
    say(f'  curl -s -H "Authorization: Bearer {th.token}" {th.url}/api/v1/contacts')
    say()
    say("  # find who handles cybercrime, anywhere in the network")
    say(f'  curl -s -H "Authorization: Bearer {th.token}" "{th.url}/api/v1/contacts?expertise=cybercrime"')
    say()
    example = {
        "name": "Wichai Thongdee",
        "title": "Public Prosecutor",
        "expertise": ["wildlife crime"],
        "languages": ["th", "en"],
    }
    say("  # add a contact point on the Thai node ...")
    say(f'  curl -s -X POST -H "Authorization: Bearer {th.token}" -H "Content-Type: application/json" \\')
    say(f"       -d '{json.dumps(example, ensure_ascii=False)}' {th.url}/api/v1/contacts")
    say()
    say("  # ... and see it arrive on the Viet Nam node")
    say(f'  curl -s -H "Authorization: Bearer {vn.token}" "{vn.url}/api/v1/contacts?q=wildlife"')
    say()
    say("  # cases: the Viet Nam node sees what needs its action (a request awaiting acknowledgement) ...")
    say(f'  curl -s -H "Authorization: Bearer {vn.token}" "{vn.url}/api/v1/cases?needs_action=true"')
    say("  # ... and the Secretariat node holds no case at all (cases go to their two parties only)")
    say(f'  curl -s -H "Authorization: Bearer {nodes[2].token}" {nodes[2].url}/api/v1/cases')
    say("  # ... it receives statistics instead: what Thailand would send (exactly), then the network's merge")
    say(f'  curl -s -H "Authorization: Bearer {th.token}" {th.url}/api/v1/stats/preview')
    say(f'  curl -s -H "Authorization: Bearer {nodes[2].token}" {nodes[2].url}/api/v1/stats')
    say()
    say(f"  # the node itself, and its peers: {th.url}/api/v1/node and {th.url}/api/v1/peers")
    say()
    say("Demo is running. Press Ctrl-C to stop all three nodes.")


def stop_all(nodes: Sequence[Running]) -> None:
    running = [n for n in nodes if n.proc is not None and n.proc.poll() is None]
    for node in running:
        assert node.proc is not None
        node.proc.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for node in running:
        assert node.proc is not None
        try:
            node.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{node.spec.name} did not stop within {STOP_TIMEOUT:.0f} s; killing it")
            node.proc.kill()
            node.proc.wait()


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def run(base: Path) -> int:
    say("SEAJust demo: three nodes on 127.0.0.1, in " + str(base.resolve()))
    say(f"Passphrase of the demo nodes: {PASSPHRASE}")
    say("  (for this demo only: it is printed here and the same for everyone; never use it for a real node)")
    nodes: list[Running] = []
    try:
        nodes = plan(base)
        if nodes[0].created:
            base.mkdir(parents=True, exist_ok=True)
            say("Creating the nodes ...")
        else:
            say("Reusing the nodes created earlier (rm -rf demo to start afresh) ...")
        in_parallel(prepare, nodes)
        in_parallel(lambda n: introduce_and_token(n, nodes), nodes)
        say("Starting the nodes ...")
        for node in nodes:
            start(node)
        wait_healthy(nodes)
        added = sum(in_parallel(seed, nodes))
        if added:
            say(f"Published {added} demo contact points through the API.")
        cases = seed_cases(nodes)
        if cases:
            say(f"Published two country profiles and created {cases} sample cases between Thailand and Viet Nam.")
        if found_network(nodes):
            say("The secretariat founded the network's roster; Thailand and Viet Nam are its founding members.")
        show(nodes, wait_replicated(nodes))
        while True:
            time.sleep(0.5)
            for node in nodes:
                if exited(node):
                    raise DemoError(f"{node.spec.name} stopped unexpectedly. {describe_log(node)}")
    except Stop:
        say()
        say("Stopping the demo ...")
        return 0
    except DemoError as exc:
        say(f"demo: error: {exc}")
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean stop short
        stop_all(nodes)
        if any(n.proc is not None for n in nodes):
            say("All demo nodes stopped. `make demo` starts them again with the same data.")


def main() -> int:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise_stop)
    return run(DEMO_DIR)


if __name__ == "__main__":
    sys.exit(main())
