"""The WeCom boundary: the only package that talks to WeCom (crypto, callbacks, API client, sync)."""
