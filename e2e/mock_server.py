#!/usr/bin/env python3
"""A stand-in for the Instabrand server, for developing the dashboard alone.

Serves dist/ with SPA fallback, a few REST endpoints and the /ws WebSocket with
made-up but moving data in the shared wire format (shared/src/api.rs, ws.rs). Standard
library only. The end-to-end tests never use it: they run the real server.

    python3 e2e/mock_server.py --port 8099 --dist dist
    INSTABRAND_BIN=e2e/mock_server.py pytest e2e   # same CLI as the real binary
"""
import argparse, asyncio, base64, hashlib, json, mimetypes, os, random, struct, time
from urllib.parse import urlparse, parse_qs, unquote

BRANDS = ["Nike", "Adidas", "Apple, Inc.", "Samsung", "Coca-Cola", "Lego", "L'Oréal", "Ben & Jerry's", "Zara", "Sony"]
CITIES = [(40.71, -74.0), (51.5, -0.12), (48.85, 2.35), (35.68, 139.69), (-23.55, -46.63), (28.61, 77.2), (-33.87, 151.2)]
state = {"t0": int(time.time() * 1000), "counts": {b: [0, 0, 0] for b in BRANDS}, "points": [], "alert_id": 0, "alerts": []}


def now_ms():
    return int(time.time() * 1000)


def leaderboard(window):
    total = sum(c[0] for c in state["counts"].values()) or 1
    rows = []
    for b, (p, l, c) in state["counts"].items():
        reach = p * 37 + l * 5 + 1
        rows.append({"brand": b, "photos": p, "likes": l, "comments": c, "reach": reach,
                     "like_rate": l / reach, "comment_rate": c / reach, "engagement_rate": (l + c) / reach,
                     "share_of_voice": p / total, "impressions": p * 120,
                     "spark": [random.randint(0, 20) for _ in range(30)]})
    return {"window": window, "from_ms": now_ms() - 300000, "to_ms": now_ms(), "total_photos": total,
            "rows": rows, "removed": [], "events_per_sec": random.uniform(40, 60)}


def photo(owner, t, text=None):
    comments = [{"username": "eve", "text": text or "nice!", "created_ms": t + 1000}]
    return {"owner": owner, "created_ms": t, "brands": [random.choice(BRANDS)], "photo_link": "https://example.com/x.jpg",
            "latitude": 48.85, "longitude": 2.35, "likes": random.randint(0, 50), "comments": 1, "recent_comments": comments}


def profile(u):
    return {"username": u, "full_name": u.title(), "registered": True, "created_ms": 0, "followers": 1234,
            "following": 56, "photos": 7, "likes_received": 89, "comments_received": 10, "celebrity": False}


def frame_for(topic, snapshot):
    kind = topic["type"]
    if kind == "leaderboard":
        return {"kind": "leaderboard", "data": leaderboard(topic["window"])}
    if kind == "influencers":
        return {"kind": "influencers", "data": [{"username": f"user{i}", "uploads": 10 - i, "likes_received": 5, "comments_received": 2,
                                                  "score": 17 - i, "followers": 1000 * (10 - i)} for i in range(10)]}
    if kind == "map":
        pts = state["points"][-2000:] if snapshot else state["points"][-20:]
        return {"kind": "map_points", "data": pts}
    if kind == "alerts":
        return {"kind": "alerts", "data": state["alerts"][-5:]}
    if kind == "health":
        return {"kind": "health", "data": {"status": "ok", "problems": [], "uptime_ms": now_ms() - state["t0"], "events_applied": 123456,
                                           "events_per_sec": 50.0, "events_by_kind": {"like": 100, "photo-upload": 20}, "dead_letters": 2,
                                           "dead_letters_by_reason": {"not_json": 2}, "pending_engagements": 3, "users": 1000,
                                           "implicit_users": 4, "photos": 5000, "stream_clock_ms": now_ms(), "late_events": 0,
                                           "websocket_clients": 1, "sources": [{"kind": "generator", "connected": True, "detail": "seed 1",
                                                                                "lag": {}, "paused": False, "rate": 50.0}]}}
    if kind == "feed":
        u = topic["username"]
        t = now_ms()
        items = [photo(u, t - i * 60000, "<script>alert(1)</script> <img src=x onerror=alert(1)>" if i == 0 else None) for i in range(5)]
        page = {"username": u, "items": items, "next": None}
        return {"kind": "feed", "data": {"profile": profile(u), "photos": page, "timeline": page}}
    if kind == "brand":
        t = now_ms() // 60000 * 60000
        series = [{"minute_ms": t - (30 - i) * 60000, "photos": random.randint(0, 9), "likes": random.randint(0, 30), "comments": random.randint(0, 5)} for i in range(30)]
        cur = leaderboard(topic["window"])["rows"][0] | {"brand": topic["brand"]}
        return {"kind": "brand", "data": {"window": topic["window"], "from_ms": t - 1800000, "to_ms": t, "current": cur, "previous": cur | {"photos": cur["photos"] // 2},
                                          "series": series, "series_step_ms": 60000, "top_posters": [{"username": "amy", "uploads": 3, "likes_received": 1, "comments_received": 0, "score": 4, "followers": 10}],
                                          "recent_points": [p for p in state["points"] if p["brand"] == topic["brand"]][-200:]}}
    return {"kind": "error", "data": {"message": "unknown topic"}}


def tick():
    for b in BRANDS:
        c = state["counts"][b]
        c[0] += random.randint(0, 3); c[1] += random.randint(0, 9); c[2] += random.randint(0, 2)
    for _ in range(5):
        lat, lon = random.choice(CITIES)
        state["points"].append({"owner": f"u{random.randint(0, 9999)}", "created_ms": now_ms() + random.randint(0, 999), "brand": random.choice(BRANDS),
                                "latitude": lat + random.uniform(-3, 3), "longitude": lon + random.uniform(-3, 3)})
    state["points"] = state["points"][-5000:]
    if random.random() < 0.05:
        state["alert_id"] += 1
        b = random.choice(BRANDS)
        state["alerts"].append({"id": state["alert_id"], "brand": b, "at_ms": now_ms(), "rate_per_min": 90.0, "baseline_per_min": 10.0, "factor": 9.0,
                                "message": f"{b} activity 9x its baseline"})


async def ws_send(writer, text):
    data = text.encode()
    n = len(data)
    head = bytes([0x81]) + (bytes([n]) if n < 126 else bytes([126]) + struct.pack(">H", n) if n < 65536 else bytes([127]) + struct.pack(">Q", n))
    writer.write(head + data)
    await writer.drain()


async def ws_read(reader):
    b1, b2 = await reader.readexactly(2)
    n = b2 & 0x7F
    if n == 126:
        n = struct.unpack(">H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", await reader.readexactly(8))[0]
    mask = await reader.readexactly(4) if b2 & 0x80 else b"\0\0\0\0"
    data = bytes(c ^ mask[i % 4] for i, c in enumerate(await reader.readexactly(n)))
    return b1 & 0x0F, data


async def websocket(reader, writer, headers):
    key = headers.get("sec-websocket-key", "")
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    writer.write(f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n".encode())
    await writer.drain()
    subs, seq = [], [0]

    async def pump():
        while True:
            await asyncio.sleep(0.5)
            for t in list(subs):
                seq[0] += 1
                await ws_send(writer, json.dumps({"topic": t, "seq": seq[0], "snapshot": False, "frame": frame_for(t, False)}))

    task = asyncio.create_task(pump())
    try:
        while True:
            op, data = await ws_read(reader)
            if op == 8:
                break
            if op != 1:
                continue
            msg = json.loads(data)
            if msg["op"] == "subscribe":
                subs.append(msg["topic"])
                seq[0] += 1
                await ws_send(writer, json.dumps({"topic": msg["topic"], "seq": seq[0], "snapshot": True, "frame": frame_for(msg["topic"], True)}))
            elif msg["op"] == "unsubscribe" and msg["topic"] in subs:
                subs.remove(msg["topic"])
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        task.cancel()


async def handle(reader, writer, dist):
    try:
        line = (await reader.readline()).decode()
        if not line:
            return
        method, target, _ = line.split(" ", 2)
        headers = {}
        while (h := (await reader.readline()).decode().strip()):
            k, v = h.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        url = urlparse(target)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/ws":
            return await websocket(reader, writer, headers)
        status, ctype, body = 200, "application/json", None
        if url.path == "/api/leaderboard":
            body = leaderboard(q.get("window", "5m"))
        elif url.path in ("/api/influencers", "/api/health"):
            body = frame_for({"type": url.path.rsplit("/", 1)[1]}, True)["data"]
        elif url.path == "/api/brands":
            body = [{"name": b, "category": "x"} for b in BRANDS]
        elif url.path == "/api/users":
            body = [profile(q.get("prefix", "") + s) for s in ("a", "bc")]
        elif url.path.startswith("/api/control"):
            if headers.get("authorization") != "Bearer secret":
                status, body = 401, {"error": "missing or wrong control token"}
            else:
                body = {"running": True, "paused": False, "rate": 50.0, "events_sent": 1}
        elif url.path == "/api/dead-letters":
            body = [{"reason": "not_json", "detail": "x", "source": "ingest", "at_ms": now_ms(), "raw": "<b>oops</b>"}]
        elif url.path.startswith("/api/"):
            status, body = 404, {"error": "not found"}
        if body is not None:
            data = json.dumps(body).encode()
        else:
            path = os.path.join(dist, unquote(url.path).lstrip("/"))
            if not os.path.isfile(path):
                path = os.path.join(dist, "index.html")
            ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
            if path.endswith(".wasm"):
                ctype = "application/wasm"
            data = open(path, "rb").read()
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
        await writer.drain()
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", nargs="?", default="serve")
    ap.add_argument("--port", type=int, default=8099)
    ap.add_argument("--dist", "--static-dir", dest="dist", default="dist")
    a = ap.parse_args()
    server = await asyncio.start_server(lambda r, w: handle(r, w, a.dist), "127.0.0.1", a.port)
    print(f"instabrand listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)

    async def ticker():
        while True:
            tick()
            await asyncio.sleep(0.5)

    asyncio.create_task(ticker())
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
