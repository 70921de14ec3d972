"""The /cgi-bin/ endpoints. Importing this package registers every route in ``ROUTES``."""

from siyu.simulator.api import (  # noqa: F401 - imported for their @route registrations
    auth,
    contact_ways,
    contacts,
    customers,
    group_welcome,
    groups,
    mass,
    media,
    moments,
    stats,
    tags,
    transfers,
    welcome,
)
from siyu.simulator.api.base import ROUTES, ApiError, Request, Route

__all__ = ["ROUTES", "ApiError", "Request", "Route"]
