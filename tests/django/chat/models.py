"""The series' models (contract section 1), with its quirks kept: camelCase columns, a custom user
whose login field is the email, and no unique constraint on a chat's pair of users."""

import uuid

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager):
    def create_user(self, email, password=None, **fields):
        user = self.model(email=self.normalize_email(email), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **fields):
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    lastConnexionDate = models.DateTimeField(null=True, blank=True)
    online = models.BooleanField(default=False)
    avatar = models.ImageField(upload_to="avatars/", null=True, blank=True)
    createdAt = models.DateTimeField(auto_now_add=True)
    updatedAt = models.DateTimeField(auto_now=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = []

    objects = UserManager()


class Chat(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    fromUser = models.ForeignKey(User, on_delete=models.CASCADE, related_name="chatsFrom")
    toUser = models.ForeignKey(User, on_delete=models.CASCADE, related_name="chatsTo")
    createdAt = models.DateTimeField(auto_now_add=True)
    updatedAt = models.DateTimeField(auto_now=True)


class Message(models.Model):
    TEXT, GEOLOC, PHOTO = 0, 1, 2
    TYPES = ((TEXT, "TEXT"), (GEOLOC, "GEOLOC"), (PHOTO, "PHOTO"))

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    refChat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(User, on_delete=models.CASCADE)
    message = models.TextField()
    type = models.IntegerField(choices=TYPES, default=TEXT)
    extraData = models.TextField(null=True, blank=True)
    isRead = models.BooleanField(default=False)
    createdAt = models.DateTimeField(auto_now_add=True)
    updatedAt = models.DateTimeField(auto_now=True)


class Notification(models.Model):
    TO_SEND, SENDING, SENT, ERROR_SENDING, NO_PUSH_TOKEN, SEND_PUSH_DISABLE = range(6)
    STATUSES = (
        (TO_SEND, "TO_SEND"),
        (SENDING, "SENDING"),
        (SENT, "SENT"),
        (ERROR_SENDING, "ERROR_SENDING"),
        (NO_PUSH_TOKEN, "NO_PUSH_TOKEN"),
        (SEND_PUSH_DISABLE, "SEND_PUSH_DISABLE"),
    )

    toUser = models.ForeignKey(User, on_delete=models.CASCADE)
    message = models.ForeignKey(Message, on_delete=models.CASCADE)
    status = models.IntegerField(choices=STATUSES, default=TO_SEND)
    sendStatus = models.TextField(null=True, blank=True)
    createdAt = models.DateTimeField(auto_now_add=True)
    updatedAt = models.DateTimeField(auto_now=True)
