"""The dealer API's contacts, ``/ext/v1/sites/{site_id}/contacts``: a site's call list, each
entry with its SMS validation (started here, completed on the sandbox clock).

Shapes as the live service sends them: the list is a bare array; ``external_contact_id`` is
required on create and never changes. Changes are audited under the ``dealer`` surface.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api.common import actor_of, no_content, path_id, read_json, reply, route, services
from sandbox.api.dealer import PREFIX, dealer_api, own_site
from sandbox.auth.guard import Principal
from sandbox.world import contacts
from sandbox.world.audit import Actor

SURFACE = "dealer"
CONTACTS = PREFIX + "/sites/{site_id}/contacts"
CONTACT = CONTACTS + "/{contact_id}"


def _actor(request: Request, principal: Principal) -> Actor:
    return actor_of(request, principal, SURFACE)


@dealer_api
async def list_contacts(request: Request, principal: Principal) -> Response:
    site = own_site(request, principal)
    return reply(contacts.listing(services(request).world, site["site_id"]))


@dealer_api
async def create_contact(request: Request, principal: Principal) -> Response:
    site = own_site(request, principal)
    body = await read_json(request)
    world = services(request).world
    return reply(contacts.create(world, site, body, _actor(request, principal)), 201)


@dealer_api
async def get_contact(request: Request, principal: Principal) -> Response:
    site = own_site(request, principal)
    world = services(request).world
    row = contacts.find(world, site["site_id"], path_id(request, "contact_id"))
    return reply(contacts.view(world, row))


@dealer_api
async def put_contact(request: Request, principal: Principal) -> Response:
    """The fields sent are set, the others kept; ``external_contact_id`` may be sent only
    unchanged (422 naming it otherwise)."""
    site = own_site(request, principal)
    contact_id = path_id(request, "contact_id")
    body = await read_json(request)
    world = services(request).world
    return reply(contacts.update(world, site, contact_id, body, _actor(request, principal)))


@dealer_api
async def delete_contact(request: Request, principal: Principal) -> Response:
    site = own_site(request, principal)
    world = services(request).world
    contacts.delete(world, site, path_id(request, "contact_id"), _actor(request, principal))
    return no_content()


@dealer_api
async def validate_contact(request: Request, principal: Principal) -> Response:
    """202: the SMS is on its way; the contact's ``sms_validation.status`` turns 1 once
    ``contacts.VALIDATION_SECONDS`` of sandbox time have passed."""
    site = own_site(request, principal)
    world = services(request).world
    contact_id = path_id(request, "contact_id")
    answer = contacts.request_validation(world, site, contact_id, _actor(request, principal))
    return reply(answer, 202)


routes = [
    route(CONTACTS, GET=list_contacts, POST=create_contact),
    route(CONTACT, GET=get_contact, PUT=put_contact, DELETE=delete_contact),
    route(CONTACT + "/validation", POST=validate_contact),
]
