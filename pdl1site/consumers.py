"""A health-check websocket: proves the ASGI stack and channel layer work end to end."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class PingConsumer(AsyncJsonWebsocketConsumer):
    """Authenticated users only; echoes a message through the channel layer and back."""

    group = "ping"

    async def connect(self):
        if not self.scope["user"].is_authenticated:
            await self.close(code=4401)
            return
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        await self.channel_layer.group_send(self.group, {"type": "ping.echo", "payload": content})

    async def ping_echo(self, event):
        await self.send_json({"echo": event["payload"]})
