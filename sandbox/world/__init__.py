"""The domain: dealers, stations, sites, contacts, devices, subscriptions, and the seeded
world they start from."""

from sandbox.world.context import World

__all__ = ["World"]
