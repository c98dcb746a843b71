#!/usr/bin/env python3
"""Startup benchmark: `spine up` on its private cluster against the raw PostgreSQL tools.

Measures, each over N runs (median, min, max):
  first run   spine up on an empty data dir until /readyz answers 200   vs  initdb + postgres until it accepts a connection
  warm start  spine up on an existing, stopped cluster until /readyz 200  vs  postgres on the same kind of data dir until ready
  idle RSS    of the spine process 2 s after readiness (kB, from /proc)
and prints the ratios. Usage: bench/startup.py [N]   (builds target/release/spine first)
"""
import glob, os, pwd, shutil, socket, statistics, subprocess, sys, tempfile, time, urllib.request

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPINE = os.path.join(ROOT, "target/release/spine")
BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
AS_ROOT = os.geteuid() == 0
PG_USER = pwd.getpwnam("postgres") if AS_ROOT else None


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def wait_http(url, deadline=30):
    start = time.perf_counter()
    while time.perf_counter() - start < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{url} not ready in {deadline}s")


def spine_run(data_dir):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPINE_") and k != "DATABASE_URL"}
    env.update(SPINE_DATA_DIR=data_dir, SPINE_LOG__LEVEL="warn")
    t0 = time.perf_counter()
    p = subprocess.Popen([SPINE, "up", "--listen", f"127.0.0.1:{port}"], env=env, cwd=os.path.dirname(data_dir),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/readyz")
    elapsed = time.perf_counter() - t0
    time.sleep(2)
    rss = int([l for l in open(f"/proc/{p.pid}/status") if l.startswith("VmRSS")][0].split()[1])
    p.terminate(); p.wait(60)
    return elapsed, rss


def demote():
    if AS_ROOT:
        os.setgid(PG_USER.pw_gid); os.setuid(PG_USER.pw_uid)


def pg_ready(sock_dir):
    while subprocess.run([f"{BIN}/pg_isready", "-q", "-h", sock_dir, "-p", "5432"]).returncode != 0:
        time.sleep(0.005)


def raw_run(base, initdb):
    data, run = os.path.join(base, "data"), os.path.join(base, "run")
    t0 = time.perf_counter()
    if initdb:
        subprocess.run([f"{BIN}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale",
                        "--no-instructions"], check=True, preexec_fn=demote, cwd=base, stdout=subprocess.DEVNULL)
    p = subprocess.Popen([f"{BIN}/postgres", "-D", data, "-k", run, "-p", "5432", "-c", "listen_addresses="],
                         preexec_fn=demote, cwd=base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pg_ready(run)
    elapsed = time.perf_counter() - t0
    p.send_signal(2); p.wait(60)
    return elapsed


def scratch():
    d = tempfile.mkdtemp(prefix="spine-bench-", dir="/tmp")
    os.chmod(d, 0o755)
    return d


def raw_dir():
    d = scratch()
    os.makedirs(os.path.join(d, "run"))
    if AS_ROOT:
        for p in (d, os.path.join(d, "run")):
            os.chown(p, PG_USER.pw_uid, PG_USER.pw_gid)
    return d


def stats(xs):
    return statistics.median(xs), min(xs), max(xs)


def main():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "spine"], cwd=ROOT, check=True)
    first, warm, rss, raw_first, raw_warm = [], [], [], [], []
    for _ in range(N):
        d = scratch()
        t, _ = spine_run(os.path.join(d, "data")); first.append(t)
        t, r = spine_run(os.path.join(d, "data")); warm.append(t); rss.append(r)
        shutil.rmtree(d, ignore_errors=True)
        d = raw_dir()
        raw_first.append(raw_run(d, initdb=True))
        raw_warm.append(raw_run(d, initdb=False))
        shutil.rmtree(d, ignore_errors=True)
    rows = [("first run (initdb + start + migrate + ready)", first, raw_first, "initdb + postgres ready"),
            ("warm start (existing cluster)", warm, raw_warm, "postgres ready")]
    print(f"spine startup benchmark, {N} runs each, PostgreSQL from {BIN}")
    for name, s, b, bname in rows:
        sm, smin, smax = stats(s); bm, _, _ = stats(b)
        print(f"{name:48s} spine {sm:6.3f} s (min {smin:.3f}, max {smax:.3f})   baseline {bname}: {bm:6.3f} s   ratio {sm / bm:5.2f}x")
    rm, rmin, rmax = stats(rss)
    print(f"{'idle RSS of the spine process':48s} {rm / 1024:6.1f} MB (min {rmin / 1024:.1f}, max {rmax / 1024:.1f})")
    print("targets: warm < 2 s, first run < 10 s, idle RSS < 50 MB:",
          "PASS" if stats(warm)[0] < 2 and stats(first)[0] < 10 and rm / 1024 < 50 else "FAIL")


if __name__ == "__main__":
    main()
