#!/usr/bin/env python3
"""An event stream written apart from the Rust generator (it shares no code or
parameters with `instabrand generate`), for end-to-end tests that compare the server's
numbers across ways of reading the same events.

Its network has another shape than our generator's: one Zipf(s≈0.9) popularity over
the users drives everything at once. Popular accounts get the most follows (a
heavy-tailed follower count), post the most, and their photos draw most of the likes
and comments, mostly from their own followers. Users keep joining through the first
half of the stream and follows keep coming through all of it, so many follows come
after photos of the user they follow (the order then decides who a photo reached),
and some come in the same second as such a photo (the tie order decides). A few users
never send `create-user` (they are only named by others' events).

Every event type, in the original 2017 wire format: naive `YYYY-MM-DD HH:MM:SS`
timestamps, string latitude/longitude, one brand per `tags` (some with commas, such as
"Apple, Inc."), sometimes the original producer's extra `partition_date` field.

What the stream promises, so that two correct readers of it agree exactly:
  - It is in event-time order, ties within one second in the order create-user,
    follow, photo-upload, like, comment, unfollow (then generation order).
  - Every like and comment names a photo that exists, by (owner, photo created_time),
    at or before its own time; no one likes a photo twice or engages with their own.
  - No duplicates: no repeated create-user, follow of an existing edge, unfollow of a
    missing one; a follow and the unfollow of the same edge never share a second.
  - Nothing whose order within a second could matter: at most one photo per second in
    the whole stream (timelines order photos by time, ties by arrival), at most one
    comment per photo per second (a photo keeps its newest comments in order).
  - Deterministic for a seed (no dependence on Python's string hashing).

Usage: python3 e2e/independent_stream.py --events 60000 --users 4000 --seed 1 --out FILE
(or import `generate`).
"""
import argparse
import bisect
import itertools
import json
import math
import random
import sys
from datetime import datetime, timedelta, timezone

# Tie order within one second.
RANK = {"create-user": 0, "follow": 1, "photo-upload": 2, "like": 3, "comment": 4, "unfollow": 5}

# (brand, weight): its own list and weights, not the bundled one.
BRANDS = [
    ("Apple, Inc.", 30), ("Nike", 22), ("Starbucks", 18), ("Coca-Cola", 16),
    ("Samsung", 13), ("McDonald's", 12), ("Adidas", 10), ("Ben & Jerry's", 8),
    ("Levi Strauss & Co.", 7), ("L'Oréal", 6), ("Red Bull", 6), ("Tesla, Inc.", 5),
    ("Procter & Gamble", 4), ("Lego", 4), ("Nestlé", 3), ("Häagen-Dazs", 3),
    ("AT&T", 2), ("Moët & Chandon", 2), ("Patagonia", 2), ("Uniqlo", 1),
]

# (lat, lon) of some cities, jittered per photo.
CITIES = [
    (40.713, -74.006), (51.507, -0.128), (48.857, 2.352), (35.690, 139.692),
    (-33.869, 151.209), (55.756, 37.617), (-23.551, -46.633), (19.433, -99.133),
    (28.614, 77.209), (1.352, 103.820), (52.520, 13.405), (41.902, 12.496),
    (37.775, -122.419), (45.465, 9.190), (59.329, 18.069), (-34.604, -58.382),
    (30.044, 31.236), (-1.292, 36.822), (64.147, -21.942), (46.265, 26.623),
]

FIRST = ["ada", "bruno", "chiara", "dmitri", "eun", "farah", "goran", "hana", "ivo", "jules",
         "kofi", "lena", "mateo", "nadia", "oskar", "priya", "quinn", "rosa", "sven", "tariq",
         "uma", "viktor", "wren", "ximena", "yusuf", "zofia"]
LAST = ["okafor", "lindqvist", "moreau", "tanaka", "novak", "silva", "haddad", "kowalski",
        "fischer", "rossi", "nguyen", "oconnor", "petrov", "garcia", "ibrahim", "jensen"]

COMMENTS = [
    "love this", "so good", "Where is this?", "wow", "E pluribus unum",
    "<b>not bold</b> & not a tag", "\"quoted\" 'single'", "Café crème ☕", "🎉🎉🎉",
    "<script>alert(1)</script>", "take me there", "10/10", "back\\slash", "again!",
]


def fmt(t):
    return t.strftime("%Y-%m-%d %H:%M:%S")


class Stream:
    def __init__(self, users, seed, start, span_secs, zipf_s):
        self.rng = random.Random(seed)
        self.start = start
        self.span = span_secs
        rng = self.rng
        # Usernames: unique, in a seeded order; popularity rank is a seeded shuffle.
        names = []
        seen = set()
        for i in itertools.count():
            if len(names) == users:
                break
            n = f"{rng.choice(FIRST)}_{rng.choice(LAST)}{rng.randrange(10, 9999)}"
            if n not in seen:
                seen.add(n)
                names.append(n)
        self.names = names
        rank = list(range(users))
        rng.shuffle(rank)
        self.weight = [1.0 / (rank[i] + 1) ** zipf_s for i in range(users)]
        self.cum = list(itertools.accumulate(self.weight))
        # About 1 % of users are never created: only named by events (follows, likes).
        self.implicit = [rng.random() < 0.01 for _ in range(users)]
        # Join times: 60 % at the very start (first 10 minutes), the rest over the
        # first half of the stream.
        self.joined = []
        for i in range(users):
            if rng.random() < 0.6:
                self.joined.append(rng.uniform(0, 600))
            else:
                self.joined.append(rng.uniform(600, span_secs / 2))
        # State.
        self.created = [False] * users
        self.followers = [[] for _ in range(users)]  # follower ids
        self.follower_pos = [{} for _ in range(users)]  # follower -> index in followers[u]
        self.edges = []  # active (follower, followed)
        self.edge_pos = {}  # (follower, followed) -> index in edges
        self.edge_last = {}  # (follower, followed) -> second of the last follow/unfollow
        self.photos = [[] for _ in range(users)]  # per owner: photo seconds, oldest first
        self.all_photos = []  # (owner, second)
        self.likes = set()  # (owner, photo second, liker)
        self.comment_secs = set()  # (owner, photo second, comment second)
        self.photo_secs = set()  # seconds holding a photo
        self.events = []  # (second, rank, seq, dict)

    # --- choices -------------------------------------------------------------

    def popular(self):
        """A user id drawn by popularity."""
        return bisect.bisect_left(self.cum, self.rng.random() * self.cum[-1])

    def uniform(self):
        return self.rng.randrange(len(self.names))

    def present(self, u, sec):
        """Whether u can act at `sec`: joined by then (implicit users too: they just
        never announce it)."""
        return self.joined[u] <= sec

    # --- events --------------------------------------------------------------

    def emit(self, sec, kind, body):
        body["created_time"] = fmt(self.start + timedelta(seconds=sec))
        body["event"] = kind
        if self.rng.random() < 0.1:
            body["partition_date"] = body["created_time"][:10]
        self.events.append((sec, RANK[kind], len(self.events), body))

    def create_users_until(self, sec):
        while self.pending_joins and self.joined[self.pending_joins[-1]] <= sec:
            u = self.pending_joins.pop()
            self.created[u] = True
            if self.implicit[u]:
                continue
            at = int(self.joined[u])
            first, last = self.names[u].split("_")
            full = f"{first.title()} {last.rstrip('0123456789').title()}"
            if u % 97 == 0:
                full = full.replace("O", "Ö", 1) + " Jr."
            self.emit(at, "create-user", {"username": self.names[u], "full_name": full})

    def follow(self, sec):
        a = self.uniform()
        b = self.popular()
        if a == b or not self.present(a, sec) or not self.present(b, sec):
            return False
        e = (a, b)
        if e in self.edge_pos or self.edge_last.get(e, -1) >= sec:
            return False
        self.edge_pos[e] = len(self.edges)
        self.edges.append(e)
        self.edge_last[e] = sec
        self.follower_pos[b][a] = len(self.followers[b])
        self.followers[b].append(a)
        self.emit(sec, "follow", {"followed_username": self.names[b], "follower_username": self.names[a]})
        return True

    def unfollow(self, sec):
        if not self.edges:
            return False
        e = self.edges[self.rng.randrange(len(self.edges))]
        if self.edge_last[e] >= sec:
            return False
        a, b = e
        i = self.edge_pos.pop(e)
        last = self.edges.pop()
        if i < len(self.edges):
            self.edges[i] = last
            self.edge_pos[last] = i
        j = self.follower_pos[b].pop(a)
        lastf = self.followers[b].pop()
        if j < len(self.followers[b]):
            self.followers[b][j] = lastf
            self.follower_pos[b][lastf] = j
        self.edge_last[e] = sec
        self.emit(sec, "unfollow", {"followed_username": self.names[b], "follower_username": self.names[a]})
        return True

    def photo(self, sec):
        if sec in self.photo_secs:
            return False
        u = self.popular() if self.rng.random() < 0.85 else self.uniform()
        if not self.present(u, sec):
            return False
        brand = self.rng.choices([b for b, _ in BRANDS], weights=[w for _, w in BRANDS])[0]
        lat, lon = self.rng.choice(CITIES)
        lat = max(-90.0, min(90.0, lat + self.rng.uniform(-0.05, 0.05)))
        lon = max(-180.0, min(180.0, lon + self.rng.uniform(-0.05, 0.05)))
        r = self.rng.random()
        if r < 0.5:
            link = f"https://img.example.com/{self.names[u]}/{sec}.jpg"
        elif r < 0.8:
            link = fmt(self.start + timedelta(seconds=sec))
        else:
            link = f"logo:{brand}"
        self.photo_secs.add(sec)
        self.photos[u].append(sec)
        self.all_photos.append((u, sec))
        self.emit(sec, "photo-upload", {
            "username": self.names[u], "tags": brand, "photo_link": link,
            "latitude": f"{lat:.3f}", "longitude": f"{lon:.3f}",
        })
        # Now and then a new follower in the very same second: the tie order
        # (follow before photo-upload) says the photo reached them.
        if self.rng.random() < 0.1:
            for _ in range(5):
                a = self.uniform()
                e = (a, u)
                if a != u and self.present(a, sec) and e not in self.edge_pos \
                        and self.edge_last.get(e, -1) < sec:
                    self.edge_pos[e] = len(self.edges)
                    self.edges.append(e)
                    self.edge_last[e] = sec
                    self.follower_pos[u][a] = len(self.followers[u])
                    self.followers[u].append(a)
                    self.emit(sec, "follow", {"followed_username": self.names[u],
                                              "follower_username": self.names[a]})
                    break
        return True

    def pick_photo(self, sec):
        """(owner, photo second): a popular owner's recent photo, mostly."""
        if not self.all_photos:
            return None
        if self.rng.random() < 0.8:
            for _ in range(8):
                u = self.popular()
                if self.photos[u]:
                    ps = self.photos[u]
                    # Recent photos favoured: geometric back from the newest.
                    k = min(len(ps) - 1, int(self.rng.expovariate(0.5)))
                    return u, ps[-1 - k]
        # Otherwise any recent photo.
        n = len(self.all_photos)
        k = min(n - 1, int(self.rng.expovariate(1 / 200)))
        return self.all_photos[n - 1 - k]

    def engager(self, owner, sec):
        if self.followers[owner] and self.rng.random() < 0.65:
            return self.rng.choice(self.followers[owner])
        return self.popular() if self.rng.random() < 0.3 else self.uniform()

    def like(self, sec):
        p = self.pick_photo(sec)
        if p is None:
            return False
        owner, at = p
        a = self.engager(owner, sec)
        if a == owner or not self.present(a, sec) or (owner, at, a) in self.likes:
            return False
        self.likes.add((owner, at, a))
        self.emit(sec, "like", {
            "followed_username": self.names[owner], "follower_username": self.names[a],
            "photo_id": fmt(self.start + timedelta(seconds=at)),
        })
        return True

    def comment(self, sec):
        p = self.pick_photo(sec)
        if p is None:
            return False
        owner, at = p
        a = self.engager(owner, sec)
        if a == owner or not self.present(a, sec) or (owner, at, sec) in self.comment_secs:
            return False
        self.comment_secs.add((owner, at, sec))
        self.emit(sec, "comment", {
            "followed_username": self.names[owner], "follower_username": self.names[a],
            "photo_id": fmt(self.start + timedelta(seconds=at)),
            "text": self.rng.choice(COMMENTS),
        })
        return True

    # --- the run -------------------------------------------------------------

    def run(self, events):
        users = len(self.names)
        self.pending_joins = sorted(range(users), key=lambda u: self.joined[u], reverse=True)
        # Everyone (who will ever be created) is created; the rest of the budget goes to
        # the activity mix, spread evenly over the span.
        creates = sum(1 for u in range(users) if not self.implicit[u])
        budget = max(0, events - creates)
        # Follow-heavy at first, engagement-heavy later.
        mix_early = {"follow": 0.55, "photo-upload": 0.12, "like": 0.22, "comment": 0.07, "unfollow": 0.04}
        mix_late = {"follow": 0.25, "photo-upload": 0.16, "like": 0.38, "comment": 0.14, "unfollow": 0.07}
        act = {"follow": self.follow, "photo-upload": self.photo, "like": self.like,
               "comment": self.comment, "unfollow": self.unfollow}
        kinds = list(mix_early)
        t = 0.0
        mean_gap = self.span / max(1, budget)
        made = 0
        while made < budget:
            t += self.rng.expovariate(1 / mean_gap)
            sec = int(t)
            self.create_users_until(sec)
            f = min(1.0, t / self.span)
            weights = [mix_early[k] * (1 - f) + mix_late[k] * f for k in kinds]
            for _ in range(20):  # a few tries: a choice may not be possible yet
                if act[self.rng.choices(kinds, weights=weights)[0]](sec):
                    made += 1
                    break
        self.create_users_until(self.span)
        self.events.sort(key=lambda e: e[:3])
        return [e[3] for e in self.events]


def generate(events=60000, users=4000, seed=1, start="2017-06-14 08:00:00", hours=6.0, zipf_s=0.9):
    """The stream as a list of event dicts in event-time order (ties by RANK)."""
    t0 = datetime.strptime(start, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    return Stream(users, seed, t0, int(hours * 3600), zipf_s).run(events)


def check(events):
    """Asserts the promises in this module's docstring hold for `events`."""
    prev = None
    created, edges, edge_last = set(), set(), {}
    photos, photo_secs, likes, comment_secs = set(), set(), set(), set()
    for i, e in enumerate(events):
        t, k = e["created_time"], e["event"]
        datetime.strptime(t, "%Y-%m-%d %H:%M:%S")
        assert prev is None or (prev[0], RANK[prev[1]]) <= (t, RANK[k]), f"#{i} out of order: {prev} then {(t, k)}"
        prev = (t, k)
        if k == "create-user":
            assert e["username"] not in created, f"#{i} created twice"
            created.add(e["username"])
        elif k in ("follow", "unfollow"):
            edge = (e["follower_username"], e["followed_username"])
            assert edge[0] != edge[1], f"#{i} self-follow"
            assert (edge in edges) == (k == "unfollow"), f"#{i} {k} of an edge that is {'' if edge in edges else 'not '}there"
            assert edge_last.get(edge, "") < t, f"#{i} {k} in the same second as the last change of its edge"
            edge_last[edge] = t
            (edges.discard if k == "unfollow" else edges.add)(edge)
        elif k == "photo-upload":
            assert t not in photo_secs, f"#{i} a second photo in second {t}"
            assert -90 <= float(e["latitude"]) <= 90 and -180 <= float(e["longitude"]) <= 180
            assert isinstance(e["latitude"], str) and isinstance(e["tags"], str)
            photo_secs.add(t)
            photos.add((e["username"], t))
        else:
            photo = (e["followed_username"], e["photo_id"])
            assert photo in photos, f"#{i} {k} of a photo not (yet) uploaded: {photo}"
            assert e["follower_username"] != e["followed_username"], f"#{i} {k} of one's own photo"
            if k == "like":
                assert (photo, e["follower_username"]) not in likes, f"#{i} liked twice"
                likes.add((photo, e["follower_username"]))
            else:
                assert (photo, t) not in comment_secs, f"#{i} two comments on one photo in one second"
                comment_secs.add((photo, t))


def encode(event):
    """One NDJSON line (bytes), key order and spacing as the original producer's."""
    return json.dumps(event, ensure_ascii=False).encode()


def key(event):
    """The original producer's Kafka key: the user the event is about."""
    return event.get("username") or event["follower_username"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=60000)
    ap.add_argument("--users", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", default="2017-06-14 08:00:00")
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--out", help="NDJSON file (default stdout)")
    ap.add_argument("--stats", action="store_true", help="print a summary on stderr")
    a = ap.parse_args()
    evs = generate(a.events, a.users, a.seed, a.start, a.hours)
    out = open(a.out, "wb") if a.out else sys.stdout.buffer
    for e in evs:
        out.write(encode(e) + b"\n")
    if a.out:
        out.close()
    if a.stats:
        print(summary(evs), file=sys.stderr)


def summary(evs):
    from collections import Counter
    kinds = Counter(e["event"] for e in evs)
    followers = Counter()
    for e in evs:
        if e["event"] == "follow":
            followers[e["followed_username"]] += 1
        elif e["event"] == "unfollow":
            followers[e["followed_username"]] -= 1
    top = followers.most_common(5)
    posts = Counter(e["username"] for e in evs if e["event"] == "photo-upload")
    return (f"{len(evs)} events {dict(kinds)}; {evs[0]['created_time']} .. {evs[-1]['created_time']}; "
            f"top followed {top}; top posters {posts.most_common(5)}")


if __name__ == "__main__":
    main()
