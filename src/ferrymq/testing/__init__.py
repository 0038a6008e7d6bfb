"""Helpers for tests and benchmarks: brokers on free ports, in a thread or a process."""

from ferrymq.testing.brokers import BrokerProcess, ThreadedBroker, eventually

__all__ = ["BrokerProcess", "ThreadedBroker", "eventually"]
