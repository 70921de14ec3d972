"""Signals other capabilities listen to, sent after the change they announce has committed."""

from __future__ import annotations

from django.dispatch import Signal

# Relations gained remark mobiles: added with them (a callback, a sync's import) or edited to have new ones.
# Arguments: corp_id, relation_ids (the relations whose remark_mobiles are now non-empty and new).
remark_mobiles_changed = Signal()
