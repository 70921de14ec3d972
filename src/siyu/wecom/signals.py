"""Signals other capabilities listen to, sent after the change they announce has committed."""

from __future__ import annotations

from django.dispatch import Signal

# A staff member added a customer (add_external_contact / add_half_external_contact), sent once per new
# relation. Arguments: corp, customer, staff, relation, state (the contact way's state: the channel),
# welcome_code (valid 20 s, single use; "" when WeCom sent none), half (True for add_half_external_contact).
contact_added = Signal()
