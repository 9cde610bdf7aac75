"""The trusted nodes: who this node exchanges data with, and whether the exchange is working.

Each node is named by its node ID, the fingerprint of its keys (`crypto.node_id`), which two operators
compare over the telephone before trusting a card: the page shows it large, in a monospace font, in its
groups of four with the check character, and this node's own ID above the list for the other side.

Administrators may also make peers by invitation (`node.invitations`, the same calls as the JSON API):
"Invite another authority" makes a one-time code, shown once, large and in groups for reading over the
phone (the node keeps only its hash, so the page is the only place it appears); "Accept an invitation"
takes a code read to them and the inviting node's address, claims it there, and both nodes then trust
each other's cards. A refused claim is shown next to the form in the node's own words. Officers see
neither form, and the two POST routes refuse them.

With LAN discovery on, admins may offer this node's card on the LAN for some minutes, and see the nodes
that offered theirs as "discovered, not trusted", each with its node ID to compare; "Trust this node"
adds the card that node offered (`node.lan_offers`), exactly as pasting it would.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crypto.errors import SeajustError
from node.runtime import NODE_KEY
from node.tls import client_session
from sync.invite_transport import exchange_claim
from ui.i18n import N_, language_of, translations
from ui.pages_network import network_page
from ui.render import done
from ui.sessions import AdminsOnly, actor, require_session

PEERS_PATH = "/ui/peers"


def _require_admin(request: web.Request) -> None:
    if require_session(request).role != "admin":
        raise AdminsOnly()


def _added_message(request: web.Request) -> str | None:
    """The message after an accepted invitation, naming the new peer (only a peer this node trusts)."""
    if request.query.get("done") != "peer_added":
        return None
    peer = request.app[NODE_KEY].peers.get(request.query.get("peer", ""))
    if peer is None:
        return None
    text = translations(language_of(request)).gettext(
        "This node now trusts %(name)s (%(country)s). The two nodes start exchanging data now."
    )
    return str(text) % {"name": peer.name, "country": peer.country}


def _peers_page(request: web.Request, *, status: int = 200, **extra: Any) -> web.Response:
    node = request.app[NODE_KEY]
    listed = sorted(node.peer_statuses(node.peers.all()), key=lambda p: (str(p["country"]), str(p["name"])))
    context: dict[str, Any] = {
        "peers": listed,
        "own": {"node_id": node.node_id, "role": node.config.role, "url": node.config.url},
        "invite_code": None,
        "accept_error": None,
        "accept_values": {"code": "", "url": ""},
        "discovery": node.config.discovery,
        "offering": node.lan_offers.offering(),
        "discovered": [o.public_json() for o in node.lan_offers.listed()],
        **extra,
    }
    flash = _added_message(request)
    if flash:
        context["flash"] = flash
    return network_page(request, "peers.html", context, status=status)


async def peers(request: web.Request) -> web.Response:
    return _peers_page(request)


async def create_invitation(request: web.Request) -> web.Response:
    _require_admin(request)
    await request.post()
    code = request.app[NODE_KEY].invitations.create(actor=actor(request))
    return _peers_page(request, invite_code=code)


async def accept_invitation(request: web.Request) -> web.Response:
    _require_admin(request)
    form = await request.post()
    code = str(form.get("code", "")).strip()
    url = str(form.get("url", "")).strip()
    values = {"code": code, "url": url}
    if not code or not url.startswith(("https://", "http://")):
        error = N_("Give the code read to you and the inviting node's address, like https://node.example.org")
        return _peers_page(request, status=422, accept_error=error, accept_values=values)
    node = request.app[NODE_KEY]
    try:
        claim, state = node.invitations.make_claim(code)
        async with client_session(node.config.peer_tls) as http:
            answer = await exchange_claim(http, url, claim)
        peer = node.invitations.finish(answer, state, actor=actor(request))
    except SeajustError as exc:
        return _peers_page(request, status=403, accept_error=exc.message, accept_values=values)
    node.peers_changed()
    raise done(PEERS_PATH, "peer_added", peer=peer.node_id)


async def offer_card(request: web.Request) -> web.Response:
    _require_admin(request)
    form = await request.post()
    minutes = OFFER_MINUTES if form.get("offer") == "start" else 0
    request.app[NODE_KEY].lan_offers.offer(minutes)
    raise web.HTTPSeeOther(PEERS_PATH)


async def trust_discovered(request: web.Request) -> web.Response:
    _require_admin(request)
    form = await request.post()
    node = request.app[NODE_KEY]
    offer = node.lan_offers.get(str(form.get("node_id", "")))
    if offer is None:
        return _peers_page(request, status=404, accept_error=N_("That node is no longer offering its card."))
    try:
        peer = node.peers.add_card(offer.text, actor=actor(request))
    except SeajustError as exc:
        return _peers_page(request, status=422, accept_error=exc.message)
    node.peers_changed()
    raise done(PEERS_PATH, "peer_added", peer=peer.node_id)


OFFER_MINUTES = 30


def add_peer_routes(app: web.Application) -> None:
    app.router.add_get(PEERS_PATH, peers)
    app.router.add_post(PEERS_PATH + "/invite", create_invitation)
    app.router.add_post(PEERS_PATH + "/accept", accept_invitation)
    app.router.add_post(PEERS_PATH + "/offer", offer_card)
    app.router.add_post(PEERS_PATH + "/discovered", trust_discovered)
