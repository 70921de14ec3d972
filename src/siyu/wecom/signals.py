"""Signals other capabilities listen to, sent after the change they announce has committed."""

from __future__ import annotations

from django.dispatch import Signal

# A staff member added a customer (add_external_contact / add_half_external_contact), sent once per new
# relation. Arguments: corp, customer, staff, relation, state (the contact way's state: the channel),
# welcome_code (valid 20 s, single use; "" when WeCom sent none), half (True for add_half_external_contact).
contact_added = Signal()

# An outbox write reached its end (sent after commit of the outcome, from the worker that sent it). Arguments:
# corp_id, outbox_id, api, idempotency_key, status ("done" or "failed"), errcode (WeCom's, or None), reason
# (why it failed; "" when done), expired (True when it was given up because its ``expires_at`` passed),
# attempts, at (when the outcome was recorded).
write_settled = Signal()

# Customers joined a customer group, as a callback reported it (change_external_chat add_member), sent after
# commit. Arguments: corp, group (GroupChat), external_userids (the customers among those who joined),
# join_scene (WeCom's JoinScene, or None), at (the callback's CreateTime).
group_joined = Signal()
