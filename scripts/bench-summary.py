#!/usr/bin/env python3
"""Prints the key figures of every `causerie bench --json` result in a directory, one line each."""
import json
import pathlib
import sys


def lat(summary):
    if not summary:
        return "-"
    return f"p50 {summary['p50_ms']} / p99 {summary['p99_ms']} / p99.9 {summary['p999_ms']} ms"


def line(name, r):
    kind = r["scenario"]
    if kind == "connections":
        rss = r["server_rss_kib"]
        return (f"{name}: opened {r['opened']}/{r['requested']}, held {r['held_after_hold']} in {r['open_seconds']} s; "
                f"RSS {rss['before']} -> {rss['held']} KiB = {rss['per_connection']} KiB/conn; "
                f"handshake {lat(r['handshake_latency_ms'])}; ceiling {r['ceiling']}")
    if kind == "rest":
        return (f"{name}: GET {r['path']} ({r['chats']} chats): {r['requests_per_sec']} req/s, {r['errors']} errors; "
                f"{lat(r['latency_ms'])}; server CPU {r['cpu'].get('server_cpu_percent')} %")
    if kind == "connect-storm":
        return (f"{name}: {r['opened']}/{r['requested']} sockets in {r['seconds_to_last_open']} s = "
                f"{r['handshakes_per_sec']} handshakes/s; refused {r['refused']}, reset {r['resets']}, "
                f"failures {r['failures']}; handshake {lat(r['handshake_latency_ms'])}")
    if kind == "app":
        steps = r["steps"]
        best = next((s for s in reversed(steps) if s["passed"]), None)
        text = f"{name}: {r['app_users_per_box']} app users per box"
        if best:
            polls = best["requests"]["chat_list"]
            text += (f" (chat list {polls['per_sec']}/s, {lat(polls)}; server CPU "
                     f"{best['cpu'].get('server_cpu_percent')} %, RSS {best['server_rss_kib']} KiB)")
        failed = next((s for s in steps if not s["passed"]), None)
        if failed:
            text += f"; first failing step: {failed['users']} users, {failed['failure']}"
        return text
    if kind == "history":
        return f"{name}: {r['requests_per_sec']} req/s, {r['errors']} errors; {lat(r['latency_ms'])}"
    phase = r.get("baseline") or r.get("result")
    integrity = r["integrity"]
    text = (f"{name}: stored {phase['stored_per_sec']}/s, deliveries {phase['deliveries_per_sec']}/s; "
            f"end-to-end {lat(phase['latency_ms'])}; ack {lat(phase['ack_latency_ms'])}; "
            f"lost {integrity['lost']}, duplicated {integrity['duplicated']}, "
            f"unanswered {integrity['unanswered_at_end']}; server CPU {r['cpu'].get('server_cpu_percent')} %")
    if "storm" in r:
        storm = r["storm"]
        logins = storm["logins"]
        text += (f"\n    storm: end-to-end {lat(storm['latency_ms'])}, p99 ratio {storm['p99_ratio_to_baseline']}x; "
                 f"logins {logins['logins_per_sec']}/s, {lat(logins['login_latency_ms'])}, statuses {logins['statuses']}")
    return text


for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    try:
        print(line(path.stem, json.loads(path.read_text())))
    except (ValueError, KeyError, TypeError) as err:
        print(f"{path.stem}: unreadable ({err!r})")
