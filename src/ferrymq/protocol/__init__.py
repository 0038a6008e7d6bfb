"""Sans-IO wire protocol codecs: bytes in, events out; events in, bytes out.

Nothing in this package imports asyncio, sockets or the broker.
"""
