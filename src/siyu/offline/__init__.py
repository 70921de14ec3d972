"""Offline members (老客/线下会员): customers imported from a file into a pending pool, merged into the WeCom
customer whose relation's remark mobile has the same phone number."""
