"""Fake providers that speak real providers' published HTTP APIs on loopback.

``app_server.AppServer`` serves a Relais app on loopback so that a fake can post its webhooks
(delivery reports, replies) to the URLs Relais gave it, as the real provider would.
"""
