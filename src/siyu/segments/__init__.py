"""Segments (分群): audience expressions, their bitmap index and evaluation, dynamic and snapshot segments."""
