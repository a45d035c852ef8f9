"""A health-check websocket: proves the ASGI stack and channel layer work end to end."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class PingConsumer(AsyncJsonWebsocketConsumer):
    """Authenticated users only; echoes a message through the channel layer back to its sender.

    The echo goes to this connection's own channel, never to a group: a shared group relayed any
    user's JSON to every connected user."""

    async def connect(self):
        if not self.scope["user"].is_authenticated:
            await self.close(code=4401)
            return
        await self.accept()

    async def receive_json(self, content, **kwargs):
        await self.channel_layer.send(self.channel_name, {"type": "ping.echo", "payload": content})

    async def ping_echo(self, event):
        await self.send_json({"echo": event["payload"]})
