#!/usr/bin/env python3
"""perf_breakdown: where a tellonce-broker's CPU time goes, from `perf script` output.

    perf record -e cpu-clock --call-graph dwarf -p BROKER_PID -o perf.data -- sleep 10
    perf script -i perf.data | tests/bench/perf_breakdown.py [CPU_US_PER_CALL]

Each sample is charged to one broker component: the first entry of COMPONENTS that
its stack matches, so e.g. a response sent from an access-log completion counts as
"commit thread: reply", not as the RocksDB write the commit thread also does.
A second table charges samples by what the leaf is doing (malloc, locks, syscalls...),
whatever component called it. Prints percentages of all samples of the process and,
given the process's CPU microseconds per call (rpc_load's cpu_us_per_call.broker), what
each component costs per call.
"""

import collections
import sys

# (component, thread root or None, substrings of a frame). A sample goes to the first
# entry, in this order, whose root (if any) and one of whose substrings appear on its
# stack.
COMMIT = "CommitQueue::CommitLoop"
TREE = "TransparencyLog::Run"
COMPONENTS = [
    ("commit thread: reply sent from the access-log completion", COMMIT,
     ["RecordAndAnswer(std::shared_ptr<tellonce::broker::Exchange::Call>)::{lambda"]),
    ("commit thread: RocksDB write + WAL fsync", COMMIT, ["rocksdb::DBImpl::Write"]),
    ("commit thread: staging (access events, serialization)", COMMIT,
     ["AccessLog::Stage", "GroupBatch::", "WriteBatchWithIndex"]),
    ("commit thread: other", COMMIT, [COMMIT]),
    ("transparency: checkpoint signing", TREE, ["TransparencyLog::Sign"]),
    ("transparency: hashing + tree writes", TREE, ["TransparencyLog::CatchUp"]),
    ("transparency: other", TREE, [TREE]),
    ("exchange: consent lookup (DecideAccess/FindActive)", None, ["DecideAccess"]),
    ("exchange: validation", None, ["ValidateGetAttributes"]),
    ("exchange: exchange id (NewConsentId)", None, ["NewConsentId"]),
    # Sending a batch: from Fetch, or from Release when an answer frees a slot.
    ("exchange: connector call start (client, batched)", None,
     ["ConnectorService::Stub::async::FetchAttributes", "ConnectorPool::Fetch",
      "ConnectorPool::Release"]),
    ("exchange: connector answer handling", None,
     ["Exchange::TakeAnswer", "ConnectorPool::Send(", "ConnectorPool::SendSingly("]),
    ("exchange: building access events", None, ["Exchange::RecordAndAnswer"]),
    ("exchange: authorization", None, ["AuthorizeAgency"]),
    ("exchange: other handler code", None,
     ["Exchange::GetAttributes", "ExchangeServiceImpl::GetAttributes"]),
    ("gRPC: call teardown", None, ["CallOnDone", "~ClientContext", "CallWrapper::~CallWrapper"]),
    ("gRPC: HTTP/2 read + TLS decrypt", None, ["grpc_chttp2_perform_read", "tsi_", "SSL_read"]),
    ("gRPC: HTTP/2 write + TLS encrypt", None,
     ["grpc_chttp2_begin_write", "write_action", "SSL_write"]),
    ("gRPC: executor / polling", None,
     ["grpc_core::Executor", "grpc_pollset_work", "pollset_work"]),
]

LEAVES = [
    ("malloc/free", ["malloc", "_int_free", "cfree", "operator new", "operator delete", "unlink_chunk"]),
    ("absl::Mutex deadlock detection (GraphCycles)", ["GraphCycles", "DeadlockCheck"]),
    ("absl::Mutex / futex", ["absl::debian3::Mutex", "futex", "Waiter::"]),
    ("kernel: scheduling / context switches", ["finish_task_switch", "__schedule"]),
    ("kernel: TCP send/receive", ["tcp_", "ip_", "__dev_queue_xmit", "net_rx", "sock_"]),
    ("kernel: fsync / block I/O", ["ext4_", "blk_", "iowrite"]),
    ("RocksDB", ["rocksdb::"]),
    ("protobuf", ["google::protobuf"]),
    ("OpenSSL crypto", ["libcrypto", "aes", "gcm", "sha256", "EVP_"]),
]


def samples(stream):
    frames = []
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            if frames:
                yield frames
            frames = []
        elif line.startswith("\t") or line.startswith(" "):
            frames.append(line.strip())
        # header lines (comm pid time: event) start a sample; nothing to keep
    if frames:
        yield frames


def main():
    us_per_call = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    by_component = collections.Counter()
    by_leaf = collections.Counter()
    total = 0
    for frames in samples(sys.stdin):
        total += 1
        def on_stack(key):
            return any(key in frame for frame in frames)

        name = next((c for c, root, keys in COMPONENTS
                     if (root is None or on_stack(root)) and any(on_stack(k) for k in keys)),
                    "other (gRPC internals, kernel, idle threads)")
        by_component[name] += 1
        leaf = frames[0]
        by_leaf[next((c for c, keys in LEAVES if any(k in leaf for k in keys)), "other")] += 1
    if total == 0:
        print("perf_breakdown: no samples", file=sys.stderr)
        return 1
    def show(counter):
        for name, n in counter.most_common():
            share = n / total
            cost = f"  {share * us_per_call:6.1f} us/call" if us_per_call > 0 else ""
            print(f"  {100.0 * share:5.1f}%{cost}  {name}")

    print(f"{total} samples; by broker component:")
    show(by_component)
    print("by what the leaf function is doing:")
    show(by_leaf)
    return 0


if __name__ == "__main__":
    sys.exit(main())
