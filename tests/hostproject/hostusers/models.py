from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """The hospital's own user model: the module must follow AUTH_USER_MODEL, never auth.User."""

    staff_number = models.CharField(max_length=20, blank=True)
