"""The sealed call path, in one place: plan, run, meter.

A call is planned once into a frozen `Plan` (`guardian.calls.planning`), run attempt by attempt
through a declared stack of layers (`guardian.calls.run`: retry, key rotation, provider
slots, outbound), and its ending is metered from what the layers observed
(`guardian.calls.metering`). `guardian.calls.router` is the one door the RPC handlers use.
"""
