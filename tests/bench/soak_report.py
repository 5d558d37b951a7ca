#!/usr/bin/env python3
"""The report of `scripts/bench --soak` (tests/bench/soak.sh).

Reads soak_load's output (windows, errors, the final line), the faults the script
injected and the broker's metrics; classifies every failed call as expected (a bank
exchange failing with UNAVAILABLE, DEADLINE_EXCEEDED or a provider result while a bank
fault was under way, or up to --grace s after it ended) or unexpected (anything else);
prints a table per 10 s window and the least-squares slopes of the broker's RSS, open
fds and threads after --warmup s; ends with one `summary:` line. Decides nothing.
"""

import argparse
import collections
import re
import statistics
import sys

# Faults of the bank's connector: bank exchanges may fail while they last.
BANK_FAULTS = {"restart", "move", "stop"}
EXPECTED_CODES = {
    "UNAVAILABLE", "DEADLINE_EXCEEDED", "RESULT_PROVIDER_UNAVAILABLE",
    "RESULT_DEADLINE_EXCEEDED", "RESULT_PROVIDER_ERROR",
}
FAULT_LETTERS = {"reload": "r", "reload-bad": "B", "restart": "K", "move": "M", "stop": "S",
                 "rotate": "C"}


def fields(line):
    """key=value pairs of a line; the value of `message` or `detail` is the rest."""
    out = {}
    for m in re.finditer(r"(\S+?)=((?:(?<=message=)|(?<=detail=)).*$|\S*)", line):
        out[m.group(1)] = m.group(2)
    return out


def slope_per_minute(points):
    """Least-squares slope of (seconds, value) points, per minute; None if < 2 points."""
    if len(points) < 2:
        return None
    xs = [p[0] / 60.0 for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--load", required=True)
    ap.add_argument("--faults", required=True)
    ap.add_argument("--metrics")
    ap.add_argument("--extra")
    ap.add_argument("--grace", type=float, default=15)
    ap.add_argument("--warmup", type=float, default=60)
    ap.add_argument("--seconds", type=float, required=True)
    args = ap.parse_args()

    windows, errors, done = [], [], {}
    with open(args.load) as f:
        for line in f:
            if line.startswith("soak window="):
                windows.append(fields(line))
            elif line.startswith("soak error "):
                errors.append(fields(line))
            elif line.startswith("soak done "):
                done = fields(line)
    faults = []
    with open(args.faults) as f:
        for line in f:
            if line.startswith("fault "):
                faults.append(fields(line))

    def bank_fault_at(ms):
        for fl in faults:
            if fl["kind"] in BANK_FAULTS and \
                    int(fl["start_ms"]) <= ms <= int(fl["end_ms"]) + args.grace * 1000:
                return fl
        return None

    expected = collections.Counter()
    unexpected = collections.Counter()
    unexpected_first = {}
    per_window_expected = collections.Counter()
    per_window_unexpected = collections.Counter()
    window_ends = [int(w["unix"]) for w in windows]

    def window_of(ms):
        s = ms / 1000.0
        for i, end in enumerate(window_ends):
            if s <= end:
                return i
        return len(window_ends) - 1

    for e in errors:
        ms = int(e["unix_ms"])
        key = (e["op"], e["code"])
        if e["op"] == "get-bank" and e["code"] in EXPECTED_CODES and bank_fault_at(ms):
            expected[key] += 1
            per_window_expected[window_of(ms)] += 1
        else:
            message = re.sub(r"\d+", "N", e.get("message", ""))[:120]
            unexpected[key + (message,)] += 1
            unexpected_first.setdefault(key + (message,), ms)
            per_window_unexpected[window_of(ms)] += 1
    not_printed = int(done.get("skipped_errors_not_printed", 0))
    undelivered = int(done.get("undelivered", 0))

    # Faults active in each window, as letters.
    def letters(i):
        end = window_ends[i]
        start = end - 10
        out = ""
        for fl in faults:
            s, e = int(fl["start_ms"]) / 1000.0, int(fl["end_ms"]) / 1000.0
            if s <= end and e >= start:
                out += FAULT_LETTERS.get(fl["kind"], "?")
        return out or "-"

    print("faults: r directory reload, B half-written directory (refused), K bank killed and "
          "restarted, M bank moved to another port, S bank SIGSTOPped, C certificates rotated")
    print("%6s %8s %8s %5s %7s %6s %8s %9s %11s %9s %9s %6s" % (
        "t_s", "rss_mib", "wal_mib", "fds", "threads", "calls", "p99_ms", "p99_bank",
        "p99_registry", "expected", "unexpect", "faults"))
    for i, w in enumerate(windows):
        print("%6s %8.1f %8.1f %5s %7s %6s %8s %9s %11s %9d %9d %6s" % (
            w["t"], int(w["rss_kb"]) / 1024.0, int(w.get("wal_kb", -1024)) / 1024.0, w["fds"],
            w["threads"], w["calls"], w["p99_ms"],
            w["p99_ms.get-bank"], w["p99_ms.get-registry"], per_window_expected[i],
            per_window_unexpected[i], letters(i)))

    measured = [w for w in windows if args.warmup < int(w["t"]) <= args.seconds]
    if not measured:  # a run shorter than the warm-up: slopes over every window
        measured = [w for w in windows if int(w["t"]) <= args.seconds] or windows
    if not measured:
        print("soak_report: no window in %s" % args.load, file=sys.stderr)
        return 1
    rss = [(int(w["t"]), int(w["rss_kb"]) / 1024.0) for w in measured if int(w["rss_kb"]) >= 0]
    fds = [(int(w["t"]), int(w["fds"])) for w in measured if int(w["fds"]) >= 0]
    threads = [(int(w["t"]), int(w["threads"])) for w in measured if int(w["threads"]) >= 0]
    wal = [(int(w["t"]), int(w["wal_kb"]) / 1024.0) for w in measured
           if int(w.get("wal_kb", -1)) >= 0]
    rss_less_wal = [(int(w["t"]), (int(w["rss_kb"]) - int(w["wal_kb"])) / 1024.0)
                    for w in measured if int(w.get("wal_kb", -1)) >= 0]
    wal_slope, rss_less_wal_slope = slope_per_minute(wal), slope_per_minute(rss_less_wal)
    p99s = [float(w["p99_ms"]) for w in windows if int(w["t"]) <= args.seconds]
    rss_slope, fd_slope, thread_slope = (slope_per_minute(x) for x in (rss, fds, threads))

    def fmt(v, spec="%.2f"):
        return "n/a" if v is None else spec % v

    print()
    print("after %.0f s of warm-up (%d windows): RSS %.1f -> %.1f MiB (min %.1f, max %.1f), "
          "slope %s MiB/min; fds %d -> %d (min %d, max %d), slope %s /min; threads %d -> %d, "
          "slope %s /min" % (
              args.warmup, len(measured), rss[0][1], rss[-1][1], min(v for _, v in rss),
              max(v for _, v in rss), fmt(rss_slope), fds[0][1], fds[-1][1],
              min(v for _, v in fds), max(v for _, v in fds), fmt(fd_slope), threads[0][1],
              threads[-1][1], fmt(thread_slope)))
    if wal:
        print("write-ahead log (unflushed memtable data) %.1f -> %.1f MiB, slope %s MiB/min; "
              "RSS less WAL %.1f -> %.1f MiB, slope %s MiB/min" % (
                  wal[0][1], wal[-1][1], fmt(wal_slope), rss_less_wal[0][1], rss_less_wal[-1][1],
                  fmt(rss_less_wal_slope)))
    print("p99 per window (all calls but deliveries): median %.2f ms, max %.2f ms" % (
        statistics.median(p99s), max(p99s)))
    print()
    print("faults injected:")
    for kind, n in sorted(collections.Counter(fl["kind"] for fl in faults).items()):
        print("  %-11s %d" % (kind, n))
    for fl in faults:
        if fl["kind"] == "rotate":
            print("  rotate: %s" % fl.get("detail", ""))
    if args.extra:
        with open(args.extra) as f:
            for line in f:
                print("  " + line.strip())
    if args.metrics:
        try:
            with open(args.metrics) as f:
                wanted = ("tellonce_directory_reloads_total", "tellonce_tls_reloads_total",
                          "tellonce_connector_circuit_open", "tellonce_outbox_deliveries",
                          "tellonce_rate_limited_total", "tellonce_exchange_refused")
                lines = [l.strip() for l in f if l.startswith(wanted)]
            print("broker metrics at the end:")
            for l in lines:
                print("  " + l)
        except OSError as e:
            print("broker metrics: %s" % e)
    print()
    print("calls: %s, failed: %s (expected %d, unexpected %d%s); changes published %s, "
          "delivered %s, undelivered %d, redelivered %s" % (
              done.get("calls", "?"), done.get("errors", "?"), sum(expected.values()),
              sum(unexpected.values()),
              ", %d more not printed, not classified" % not_printed if not_printed else "",
              done.get("published", "?"), done.get("delivered", "?"), undelivered,
              done.get("redelivered", "?")))
    if expected:
        print("expected failures (bank exchanges during a bank fault + %.0f s):" % args.grace)
        for (op, code), n in expected.most_common():
            print("  %6d %s %s" % (n, op, code))
    if unexpected:
        print("UNEXPECTED failures:")
        for (op, code, message), n in unexpected.most_common(30):
            print("  %6d %s %s (first at unix_ms %d): %s" % (
                n, op, code, unexpected_first[(op, code, message)], message))
    unexpected_total = sum(unexpected.values()) + undelivered + not_printed
    print("summary: minutes=%.0f calls=%s unexpected_errors=%d expected_errors=%d "
          "undelivered=%d rss_mb_first=%.1f rss_mb_last=%.1f rss_slope_mb_per_min=%s "
          "fds_first=%d fds_last=%d fds_slope_per_min=%s rss_less_wal_slope_mb_per_min=%s "
          "p99_ms_median=%.2f p99_ms_max=%.2f" % (
              args.seconds / 60, done.get("calls", "?"), unexpected_total,
              sum(expected.values()), undelivered, rss[0][1], rss[-1][1], fmt(rss_slope),
              fds[0][1], fds[-1][1], fmt(fd_slope), fmt(rss_less_wal_slope),
              statistics.median(p99s), max(p99s)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
