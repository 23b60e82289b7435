#!/usr/bin/env python3
"""Latency of POST /v1/login per class: wrong password, unknown email, correct password.

Driven by bench/login_timing.sh (which starts the server and creates the account);
standard library only. One keep-alive connection, one request at a time, classes
in randomly shuffled blocks (each block holds one request of every class), so drift
(other processes, thermal, SQLite growth) hits every class alike. Prints n, median,
mean, p90, p99 per class and the difference of medians, wrong password minus
unknown email, with a bootstrap 95 % interval, plus the median of the paired
within-block differences and a Mann-Whitney U test.

    python3 bench/login_timing.py http://127.0.0.1:PORT [samples per class]
    LOGIN_CLASSES=wrong_password,unknown_email python3 bench/login_timing.py ...
"""

import http.client
import json
import math
import os
import random
import statistics
import sys
import time
import urllib.parse

ACCOUNT = "bench@example.com"
PASSWORD = "correct horse battery staple"
CLASSES = [
    ("wrong_password", ACCOUNT, "wrong password here!", 401),
    ("unknown_email", "nobody-bench@example.com", "wrong password here!", 401),
    ("correct_password", ACCOUNT, PASSWORD, 200),
]
WARMUP = 10  # blocks, not recorded
BOOTSTRAP = 2000


def main():
    url = urllib.parse.urlsplit(sys.argv[1])
    if url.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("refusing a non-loopback target")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    wanted = os.environ.get("LOGIN_CLASSES", ",".join(c[0] for c in CLASSES)).split(",")
    classes = [c for c in CLASSES if c[0] in wanted]
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.connect()
    rng = random.Random(int(time.time()))

    def once(email, password, expected):
        body = json.dumps({"email": email, "password": password})
        headers = {"content-type": "application/json"}
        started = time.perf_counter()
        conn.request("POST", "/v1/login", body, headers)
        resp = conn.getresponse()
        resp.read()
        elapsed = time.perf_counter() - started
        if resp.status != expected:
            sys.exit(f"{email}: HTTP {resp.status}, expected {expected} (rate limit or lockout still on?)")
        return elapsed

    samples = {c[0]: [] for c in classes}
    blocks = []  # per block: {class: seconds}
    began = time.monotonic()
    for b in range(WARMUP + n):
        order = classes[:]
        rng.shuffle(order)
        block = {}
        for name, email, password, expected in order:
            block[name] = once(email, password, expected)
        if b >= WARMUP:
            blocks.append(block)
            for name, t in block.items():
                samples[name].append(t)
    wall = time.monotonic() - began

    ms = lambda s: f"{s * 1000:8.2f}"
    print(f"{n} samples per class after {WARMUP} warm-up blocks, {wall:.0f} s, one connection, randomised blocks")
    print(f"{'class':<18}{'n':>5}{'median':>9}{'mean':>9}{'p90':>9}{'p99':>9}{'sd':>9}   (ms)")
    for name in samples:
        v = sorted(samples[name])
        print(f"{name:<18}{len(v):>5}{ms(statistics.median(v))} {ms(statistics.fmean(v))} "
              f"{ms(pct(v, 90))} {ms(pct(v, 99))} {ms(statistics.stdev(v))}")

    if "wrong_password" in samples and "unknown_email" in samples:
        w, u = samples["wrong_password"], samples["unknown_email"]
        d = statistics.median(w) - statistics.median(u)
        lo, hi = bootstrap(rng, lambda a, b: statistics.median(a) - statistics.median(b), w, u)
        print(f"\nwrong_password - unknown_email, difference of medians: {d*1000:+.3f} ms "
              f"(bootstrap 95 % CI {lo*1000:+.3f} .. {hi*1000:+.3f} ms; "
              f"{d / statistics.median(u) * 100:+.1f} % of the unknown-email median)")
        paired = [blk["wrong_password"] - blk["unknown_email"] for blk in blocks]
        pm = statistics.median(paired)
        plo, phi = bootstrap1(rng, statistics.median, paired)
        print(f"paired within-block differences, median: {pm*1000:+.3f} ms "
              f"(bootstrap 95 % CI {plo*1000:+.3f} .. {phi*1000:+.3f} ms)")
        z, p, auc = mann_whitney(w, u)
        print(f"Mann-Whitney U: P(wrong > unknown) = {auc:.3f}, z = {z:+.2f}, two-sided p = {p:.3g}")


def pct(sorted_v, q):
    # nearest-rank percentile
    k = max(0, math.ceil(q / 100 * len(sorted_v)) - 1)
    return sorted_v[k]


def bootstrap(rng, stat, a, b):
    reps = sorted(stat(rng.choices(a, k=len(a)), rng.choices(b, k=len(b))) for _ in range(BOOTSTRAP))
    return reps[int(0.025 * BOOTSTRAP)], reps[int(0.975 * BOOTSTRAP) - 1]


def bootstrap1(rng, stat, a):
    reps = sorted(stat(rng.choices(a, k=len(a))) for _ in range(BOOTSTRAP))
    return reps[int(0.025 * BOOTSTRAP)], reps[int(0.975 * BOOTSTRAP) - 1]


def mann_whitney(a, b):
    """U test with the normal approximation (tie-corrected). Returns z, p, U/(n1 n2)."""
    pooled = sorted([(x, 0) for x in a] + [(x, 1) for x in b])
    ranks = [0.0] * len(pooled)
    ties = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        r = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[k] = r
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    n1, n2 = len(a), len(b)
    r1 = sum(r for r, (_, g) in zip(ranks, pooled) if g == 0)
    u1 = r1 - n1 * (n1 + 1) / 2
    n = n1 + n2
    sd = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
    z = (u1 - n1 * n2 / 2) / sd
    p = math.erfc(abs(z) / math.sqrt(2))
    return z, p, u1 / (n1 * n2)


if __name__ == "__main__":
    main()
