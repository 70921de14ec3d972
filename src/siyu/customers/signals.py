"""Signals other capabilities listen to, sent after the change they announce has committed (unless said
otherwise)."""

from __future__ import annotations

from django.dispatch import Signal

# Relations gained remark mobiles: added with them (a callback, a sync's import) or edited to have new ones.
# Arguments: corp_id, relation_ids (the relations whose remark_mobiles are now non-empty and new).
remark_mobiles_changed = Signal()

# A relation ended (deleted by the staff member or by the customer). Sent inside the ending transaction, so a
# listener's writes commit or roll back with it.
# Arguments: corp_id, relation_id, by ("staff" / "customer"), at.
relation_ended = Signal()
