#!/usr/bin/env python
"""Builds and changes a chattuto database with Django itself, for tests/import_django.rs.

    fixture.py build  --database TARGET   migrate, then create the first state
    fixture.py change --database TARGET   change rows, as a live deployment would before cutover
    fixture.py volume --database TARGET   a larger database, to measure the import

TARGET is a SQLite file path or a postgres:// URL (an existing, empty database). Each command
prints what it made as one JSON object on stdout; the Rust test checks the import against it.

The first state carries the series' quirks: two chats for one pair of users, read and unread
messages in both, and rows the import must refuse (an invalid email, an email that differs only
in case, a chat with oneself, a message by someone outside the chat, an unknown message type, a
message whose author no longer exists, devices without a user or with an unknown type or a
registration id held twice). Its dates lie in 2021, so that the changes made "now" are the only
rows a delta import has to read.
"""

import argparse
import json
import os
import sys
import uuid
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
UTC = timezone.utc
BASE = datetime(2021, 3, 1, 9, 0, 0, tzinfo=UTC)

PASSWORDS = {
    "alice": "Alice-Old-Password-1",
    "bob": "Bob-Old-Password-2",
    "carol": "Carol-Old-Password-3",
    "dave": "Dave-Old-Password-4",
    "erin": "Erin-Old-Password-5",
    "admin": "Admin-Old-Password-6",
    "frank": "Frank-New-Password-7",
}
CAROL_NEW_PASSWORD = "Carol-Changed-Password-8"


def setup(database):
    os.environ["FIXTURE_DATABASE"] = database
    os.environ["DJANGO_SETTINGS_MODULE"] = "chattuto.settings"
    sys.path.insert(0, HERE)
    import django

    django.setup()


def at(hours=0, minutes=0, seconds=0, micro=0):
    return BASE + timedelta(hours=hours, minutes=minutes, seconds=seconds, microseconds=micro)


def iso(value):
    return None if value is None else value.astimezone(UTC).isoformat()


def stamp(model, pk, **dates):
    """Sets dates behind auto_now/auto_now_add: a queryset update does not touch them."""
    model.objects.filter(pk=pk).update(**dates)


def message(chat, author, text, created, read, kind=0, extra=""):
    from chat.models import Message

    row = Message.objects.create(refChat=chat, author=author, message=text, type=kind, extraData=extra, isRead=read)
    stamp(Message, row.pk, createdAt=created, updatedAt=created + timedelta(minutes=1))
    return row


def insert_dangling_message(chat, created):
    """A message whose author is gone (what a manual delete with the constraints off leaves)."""
    from django.db import connection

    ghost = uuid.uuid4()
    row_id = uuid.uuid4()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA foreign_keys = OFF")
            ids = (row_id.hex, chat.pk.hex, ghost.hex)
        else:
            # As a superuser: skip the FK triggers for this session.
            cursor.execute("SET session_replication_role = replica")
            ids = (str(row_id), str(chat.pk), str(ghost))
        cursor.execute(
            'INSERT INTO chat_message (id, "refChat_id", author_id, message, type, "extraData", "isRead", '
            '"createdAt", "updatedAt") VALUES (%s, %s, %s, %s, 0, %s, %s, %s, %s)',
            [ids[0], ids[1], ids[2], "from a deleted account", "", False, created, created],
        )
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA foreign_keys = ON")
        else:
            cursor.execute("SET session_replication_role = DEFAULT")
    return row_id, ghost


def tokens_for(user):
    """Tokens minted by SimpleJWT 4.6 itself, as the Django stack issued them (no `iat`)."""
    import django.utils.timezone

    # SimpleJWT 4.6 imports `django.utils.timezone.utc`, which Django 5 removed; it was this.
    django.utils.timezone.utc = timezone.utc
    from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

    return {"access": str(AccessToken.for_user(user)), "refresh": str(RefreshToken.for_user(user))}


def build():
    from django.conf import settings
    from django.core.management import call_command
    from fcm_django.models import FCMDevice

    from chat.models import Chat, Message, Notification, User

    call_command("migrate", verbosity=0, interactive=False)

    people = {}
    order = ["erin", "carol", "bob", "alice", "admin", "dave"]  # dave's row is updated last
    for i, name in enumerate(order):
        fields = {"first_name": name.capitalize(), "last_name": "Martin" if name != "dave" else "Durand"}
        if name == "admin":
            user = User.objects.create_superuser(f"{name}@example.com", PASSWORDS[name], **fields)
        else:
            user = User.objects.create_user(f"{name}@example.com", PASSWORDS[name], **fields)
        people[name] = user
    User.objects.filter(pk=people["erin"].pk).update(is_active=False)
    User.objects.filter(pk=people["bob"].pk).update(online=True, lastConnexionDate=at(200, micro=654321))
    User.objects.filter(pk=people["alice"].pk).update(avatar="avatars/alice.png", last_login=at(150))
    for i, name in enumerate(order):
        joined = at(i, micro=123456 if i % 2 else 0)
        stamp(User, people[name].pk, date_joined=joined, createdAt=joined, updatedAt=at(100 + i))

    # Refused by the import: not an email, and an email that differs from alice's only in case.
    bad_email = User.objects.create_user("not-an-email", "Whatever-Pass-9", first_name="Bad")
    alice_upper = User.objects.create_user("ALICE@example.com", "Whatever-Pass-9", first_name="Shadow")
    for i, user in enumerate([bad_email, alice_upper]):
        stamp(User, user.pk, date_joined=at(10 + i), createdAt=at(10 + i), updatedAt=at(20 + i))

    alice, bob, carol, dave, erin = (people[n] for n in ["alice", "bob", "carol", "dave", "erin"])
    chats = {}

    def chat(name, from_user, to_user, created):
        row = Chat.objects.create(fromUser=from_user, toUser=to_user)
        stamp(Chat, row.pk, createdAt=created, updatedAt=created + timedelta(minutes=5))
        chats[name] = row
        return row

    # The series could make two chats for one pair: alice→bob, then bob→alice.
    ab1 = chat("ab1", alice, bob, at(24))
    ab2 = chat("ab2", bob, alice, at(28))
    ac = chat("ac", alice, carol, at(30))
    bd = chat("bd", bob, dave, at(32))
    cc = chat("cc", carol, carol, at(34))  # refused: a chat with oneself
    dx = chat("dx", dave, bad_email, at(36))  # refused: its other user is refused

    messages = {}
    messages["m1"] = message(ab1, alice, "Hello Bob", at(40), True)
    messages["m2"] = message(ab2, bob, "Hi Alice, from the other chat", at(41, micro=5), True)
    messages["m3"] = message(ab1, bob, "How are you?", at(42), True)
    messages["m4"] = message(ab2, alice, "My position", at(43, micro=250000), True, 1, "48.8566,2.3522")
    messages["m5"] = message(ab1, alice, "Unread for Bob", at(44), False)
    messages["m6"] = message(ab2, bob, "A photo", at(45), False, 2, "data:image/png;base64,iVBORw0KGgo=")
    messages["m7"] = message(ab1, bob, "Unread for Alice", at(46), False, 0, None)
    # Two messages at the same instant: their ids decide the order.
    messages["c1"] = message(ac, carol, "Same instant, one", at(50), True)
    messages["c2"] = message(ac, alice, "Same instant, two", at(50), False)
    bd_names = []
    for i in range(25):
        author = bob if i % 2 == 0 else dave
        name = f"bd{i:02}"
        messages[name] = message(bd, author, f"Message {i} between Bob and Dave", at(60, minutes=i), i < 20)
        bd_names.append(name)

    refused = {}
    refused["outsider"] = message(ab1, erin, "Erin was never in this chat", at(43, minutes=30), False)
    refused["bad_type"] = message(ac, carol, "A sticker", at(51), False, 9, "")
    refused["self_chat"] = message(cc, carol, "Note to self", at(52), False)
    refused["refused_chat"] = message(dx, dave, "Hello?", at(53), False)
    dangling_id, ghost = insert_dangling_message(bd, at(61))
    Notification.objects.create(toUser=bob, message=messages["m5"], status=Notification.TO_SEND)

    devices = {}

    def device(name, user, registration_id, kind, active=True):
        row = FCMDevice.objects.create(
            user=user, name=name, registration_id=registration_id, type=kind, active=active, device_id=f"dev-{name}"
        )
        devices[name] = row
        return row

    device("alice-phone", alice, "tok-alice", "android")
    device("bob-phone", bob, "tok-bob", "ios")
    device("carol-browser", carol, "tok-carol", "web", active=False)
    device("dave-old-phone", dave, "tok-shared", "android")  # refused: the token moved to alice
    device("alice-tablet", alice, "tok-shared", "web")
    device("orphan", None, "tok-orphan", "android")  # refused: no user
    device("bob-desktop", bob, "tok-win", "windows")  # refused: unknown type

    out = {
        "secret_key": settings.SECRET_KEY,
        "users": {
            name: {
                "id": str(u.pk),
                "email": u.email,
                "password": PASSWORDS[name],
                "hash": User.objects.get(pk=u.pk).password,
            }
            for name, u in people.items()
        },
        "refused_users": {"bad_email": str(bad_email.pk), "alice_upper": str(alice_upper.pk)},
        "chats": {name: str(c.pk) for name, c in chats.items()},
        "messages": {name: str(m.pk) for name, m in messages.items()},
        "bd_order": bd_names,
        "refused_messages": {**{name: str(m.pk) for name, m in refused.items()}, "dangling": str(dangling_id)},
        "ghost_author": str(ghost),
        "devices": {name: d.pk for name, d in devices.items()},
        "tokens": {"alice": tokens_for(alice), "dave": tokens_for(dave)},
        "counts": {
            "users": User.objects.count(),
            "chats": Chat.objects.count(),
            "messages": Message.objects.count(),
            "devices": FCMDevice.objects.count(),
        },
    }
    return out


def change():
    from chat.models import Chat, Message, User

    alice = User.objects.get(email="alice@example.com")
    bob = User.objects.get(email="bob@example.com")
    carol = User.objects.get(email="carol@example.com")

    alice.first_name = "Alicia"
    alice.save()
    carol.set_password(CAROL_NEW_PASSWORD)
    carol.save()

    ab1, ab2 = Chat.objects.filter(fromUser__in=[alice, bob], toUser__in=[alice, bob]).order_by("createdAt")
    m3 = Message.objects.get(refChat=ab1, author=bob, message="How are you?")
    m3.message = "How are you doing?"
    m3.save()

    # Read marks, both ways the series set them: a queryset update (updatedAt untouched) ...
    m6 = Message.objects.get(refChat=ab2, message="A photo")
    Message.objects.filter(pk=m6.pk).update(isRead=True)
    # ... and a save (updatedAt moves).
    m7 = Message.objects.get(refChat=ab1, message="Unread for Alice")
    m7.isRead = True
    m7.save()

    m8 = Message.objects.create(refChat=ab2, author=alice, message="Written after the first import", type=0)
    # Stored after the first import but dated before everything else in the chat.
    m9 = Message.objects.create(refChat=ab1, author=bob, message="Late arrival", type=0)
    Message.objects.filter(pk=m9.pk).update(createdAt=at(39))

    frank = User.objects.create_user("frank@example.com", PASSWORDS["frank"], first_name="Frank", last_name="Petit")
    fa = Chat.objects.create(fromUser=frank, toUser=alice)
    f1 = Message.objects.create(refChat=fa, author=frank, message="Hello Alice, I am new", type=0)
    # A second chat for alice and carol, made now: it merges into theirs.
    ac2 = Chat.objects.create(fromUser=carol, toUser=alice)
    c4 = Message.objects.create(refChat=ac2, author=carol, message="From the newer duplicate", type=0)

    return {
        "carol_new_password": CAROL_NEW_PASSWORD,
        "users": {"frank": {"id": str(frank.pk), "email": frank.email, "password": PASSWORDS["frank"]}},
        "chats": {"fa": str(fa.pk), "ac2": str(ac2.pk)},
        "messages": {"m8": str(m8.pk), "m9": str(m9.pk), "f1": str(f1.pk), "c4": str(c4.pk)},
    }


def volume(users, chats, messages):
    """A larger database for measuring the import (not used by the tests): `users` users,
    `chats` chats between random pairs, `messages` messages spread over them, half read."""
    import random

    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command

    from chat.models import Chat, Message, User

    call_command("migrate", verbosity=0, interactive=False)
    rng = random.Random(7)
    password = make_password("Volume-Password-1")  # one real hash, shared: hashing is slow
    people = User.objects.bulk_create(
        [User(email=f"v{i}@example.com", password=password, first_name=f"V{i}") for i in range(users)],
        batch_size=1000,
    )
    pairs = [rng.sample(people, 2) for _ in range(chats)]
    rooms = Chat.objects.bulk_create([Chat(fromUser=a, toUser=b) for a, b in pairs], batch_size=1000)
    batch = []
    for i in range(messages):
        k = rng.randrange(len(rooms))
        author = pairs[k][rng.randrange(2)]
        batch.append(
            Message(refChat=rooms[k], author=author, message=f"message {i}", isRead=rng.random() < 0.5)
        )
        if len(batch) == 5000:
            Message.objects.bulk_create(batch)
            batch = []
    Message.objects.bulk_create(batch)
    return {"users": users, "chats": chats, "messages": messages}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "change", "volume"])
    parser.add_argument("--database", required=True, help="SQLite file path or postgres:// URL")
    parser.add_argument("--users", type=int, default=1000, help="volume: users")
    parser.add_argument("--chats", type=int, default=5000, help="volume: chats")
    parser.add_argument("--messages", type=int, default=100000, help="volume: messages")
    args = parser.parse_args()
    setup(args.database)
    if args.command == "build":
        result = build()
    elif args.command == "change":
        result = change()
    else:
        result = volume(args.users, args.chats, args.messages)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
