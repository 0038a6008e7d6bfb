"""Thin asyncio glue between sockets, protocol codecs and the core."""
