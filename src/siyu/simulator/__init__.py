"""A WeCom (企业微信) server for the demo, tests and load: same paths, JSON, errcodes and encrypted callbacks.

It holds no Siyu data and never imports Siyu's domain code; only ``siyu.wecom.crypto`` is shared, for the
callback cipher. Start one with ``siyu simulator`` (``siyu.simulator.cli``) or, in tests, with
``siyu.simulator.testing.running_simulator``; the server itself is ``siyu.simulator.app.Simulator``.
"""
