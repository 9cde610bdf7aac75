"""`make bench` and `make demo` as a user runs them: real processes on loopback, driven from outside."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.processes

REPO = Path(__file__).resolve().parents[1]
READY = "Demo is running. Press Ctrl-C to stop all three nodes."


def run_bench(script: str, *args: str, timeout: float) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run `bench/<script>` as a user does; it must succeed and end with its `ratio` line."""
    argv = [sys.executable, str(REPO / "bench" / script), *args]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(r"ratio \d+\.\d\d", lines[-1]), lines[-1]
    return result, lines


def test_bench_prints_both_medians_and_ends_with_the_ratio() -> None:
    result, lines = run_bench("sync_bench.py", "--edits", "20", timeout=150)
    medians = [line for line in lines if re.search(r"latency median\s+\d+\.\d+ ms", line)]
    assert len(medians) == 2, result.stdout
    assert sum("edits/s" in line for line in lines) == 2
    assert any(line.startswith("machine: ") and "CPUs" in line and "Python" in line for line in lines)


def get(url: str, token: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def node_processes(cwd: Path) -> dict[int, str]:
    """`seajust run` processes started in `cwd` (the demo names its homes relative to it)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            here = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if b"node.cli" in argv and b"run" in argv and here == cwd:
            found[int(entry.name)] = b" ".join(argv).decode(errors="replace")
    return found


def parse_ready_block(lines: list[str]) -> dict[str, dict[str, str]]:
    """Node name -> {"url": ..., "token": ...} from the block the demo prints once ready."""
    nodes: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in lines:
        if line.endswith("]") and "  [" in line:
            current = nodes.setdefault(line.split("  [")[0], {})
        elif current is not None and (match := re.fullmatch(r"  (URL|API token)\s+(\S+)", line)):
            current["url" if match[1] == "URL" else "token"] = match[2]
    return nodes


def test_demo_runs_three_replicating_nodes_and_stops_them_on_ctrl_c(tmp_path: Path) -> None:
    if not Path("/proc/self/cwd").exists():
        pytest.skip("needs /proc to find the node processes")
    tmp_path = tmp_path.resolve()  # as /proc/PID/cwd shows it
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []
    children: dict[int, str] = {}
    with subprocess.Popen(
        [sys.executable, "-m", "node.demo"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as demo:
        assert demo.stdout is not None
        stdout = demo.stdout

        def pump() -> None:
            for line in stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 120
            while READY not in output:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                assert line is not None, "demo exited early:\n" + "\n".join(output)
                output.append(line)
            children = node_processes(tmp_path)
            assert len(children) == 3, children

            nodes = parse_ready_block(output)
            thai = nodes["Thailand — Office of the Attorney General"]
            viet = nodes["Viet Nam — Supreme People's Procuracy"]
            assert thai["url"].startswith("http://127.0.0.1:") and thai["token"].startswith("sjt_")
            assert "SEAJust Secretariat (UNODC)" in nodes

            on_thai = get(thai["url"] + "/api/v1/contacts", thai["token"])
            thai_names = {c["name"] for c in on_thai if c["country"] == "TH"}
            assert len(thai_names) >= 2
            assert any("extradition" in c["expertise"] and "th" in c["languages"] for c in on_thai)
            assert any(c["country"] == "VN" and "cybercrime" in c["expertise"] for c in on_thai)
            eventually(
                lambda: thai_names <= {c["name"] for c in get(viet["url"] + "/api/v1/contacts", viet["token"])},
                15,
                "the Thai contact points to reach the Viet Nam node",
            )

            secretariat = nodes["SEAJust Secretariat (UNODC)"]
            eventually(
                lambda: any(
                    "awaiting_my_acknowledgement" in c["needs_action"]
                    for c in get(viet["url"] + "/api/v1/cases?needs_action=true", viet["token"])
                ),
                15,
                "the Thai request to need Viet Nam's acknowledgement",
            )
            assert len(get(thai["url"] + "/api/v1/cases", thai["token"])) == 3
            assert get(secretariat["url"] + "/api/v1/cases", secretariat["token"]) == []
            eventually(
                lambda: len(get(thai["url"] + "/api/v1/roster", thai["token"])["members"]) == 3,
                15,
                "the roster founded by the secretariat to reach Thailand",
            )

            demo.send_signal(signal.SIGINT)
            assert demo.wait(timeout=10) == 0, "\n".join(output)
            reader.join(5)
            assert not node_processes(tmp_path)
            assert not any(Path(f"/proc/{pid}").exists() for pid in children)
        finally:
            if demo.poll() is None:
                demo.terminate()
                try:
                    demo.wait(15)
                except subprocess.TimeoutExpired:
                    demo.kill()
                    demo.wait()
            for pid in node_processes(tmp_path):  # only if the demo itself failed to stop them
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def test_cases_bench_prints_every_figure_and_ends_with_the_memory_ratio() -> None:
    result, lines = run_bench("cases_bench.py", "--cases", "500", "--docs", "20", timeout=120)
    assert any(line.startswith("machine: ") and "CPUs" in line and "Python" in line for line in lines)
    assert any(line.startswith("projection: 500 case rows") for line in lines), result.stdout
    assert any(line.startswith("documents: 20 cases") for line in lines), result.stdout
    assert any(line.startswith("reopen: 21 case documents") for line in lines), result.stdout  # and the long one
    reads = [
        "first page",
        "overdue",
        "needs action",
        "search 'fraud' (English word)",
        "search 'ฟอกเงิน' (Thai substring)",
        "counts",
    ]
    for label in reads:
        assert any(
            re.fullmatch(rf"  {re.escape(label)}\s+\d+\.\d\d ms first\s+\d+\.\d\d ms median\s+\d+ rows", line)
            for line in lines
        ), label
    for label in ("create", "note", "transition (sent)", "GET cold", "GET warm"):
        assert any(
            re.match(rf"  {re.escape(label)}\s+\d+\.\d\d ms median\s+\d+\.\d\d ms p90", line) for line in lines
        ), label
    assert any(
        re.match(r"  note, case of  10 notes\s+\d+\.\d\d ms median\s+\d+\.\d\d ms p90", line) for line in lines
    ), result.stdout
    for label in ("open_node", "store.load", "case_keys.load"):
        assert any(re.match(rf"  {re.escape(label)}\s+\d+\.\d\d ms", line) for line in lines), label
    for label in ("RSS growth on demand", "RSS growth all loaded"):
        assert any(re.match(rf"  {re.escape(label)}\s+-?\d+\.\d MB", line) for line in lines), label


def test_network_bench_prints_convergence_figures_and_ends_with_the_ratio() -> None:
    result, lines = run_bench("network_bench.py", "--edits", "3", timeout=170)
    assert any(line.startswith("machine: ") and "CPUs" in line and "Python" in line for line in lines)
    assert any(re.match(r"started: all 11 nodes up and fully connected .* in \d+\.\d s", line) for line in lines)
    for label in ("median", "p90   ", "max   "):
        assert any(re.match(rf"  all converged   {label} +\d+\.\d\d ms", line) for line in lines), label
    assert any(re.match(r"  first reached   median +\d+\.\d\d ms", line) for line in lines)
    assert any(re.match(r"  per-node arrival median +\d+\.\d\d ms +\(30 arrivals\)", line) for line in lines)
    for label in ("polled", "quiet"):
        assert any(re.match(rf"  node CPU per edit, {label} +\d+\.\d ms", line) for line in lines), label
    rss = [line for line in lines if re.match(r"  RSS after (connect|edits) +median +\d+\.\d MB", line)]
    assert len(rss) == 2, result.stdout


def test_scale_bench_prints_every_figure_with_its_target_and_ends_with_the_ratio(tmp_path: Path) -> None:
    _result, lines = run_bench(
        "scale_bench.py", "--cases", "300", "--shared", "50", "--cache", str(tmp_path / "cache"), timeout=170
    )
    assert any(line.startswith("machine: ") and "CPUs" in line and "Python" in line for line in lines)
    assert any(line.startswith("homes: generating 300 cases (50 shared)") for line in lines), lines
    assert re.search(r"start: \d+\.\d\d s median of 3 .* target < 3 s: (meets|MISSES)", "\n".join(lines))
    reads = ["needs action", "search 'fraud' (common word)", "(rare reference)", "search 'ฟอกเงิน' (Thai word)"]
    figure = r"\s+\d+\.\d\d ms first\s+\d+\.\d\d ms median\s+\d+ rows\s+target < 100 ms"
    for label in reads:
        assert any(re.search(re.escape(label) + figure, line) for line in lines), label
    assert any(re.match(r"  RSS after reads +\d+\.\d MB +target < 600 MB", line) for line in lines)
    assert any(re.match(r"  all cases listed +\d+\.\d\d s +target < 10 s", line) for line in lines)
    assert any(re.match(r"  all versions equal +\d+\.\d\d s", line) for line in lines)
    for label in (r"update \(big node -> peer\)", r"ack \(peer -> big node\)"):
        assert any(re.match(rf"  {label} +\d+ B", line) for line in lines), label
    assert any(re.match(r"  per edit, both ways +\d+ B +target < 1024 B", line) for line in lines)
    cache = tmp_path / "cache"
    assert {p.name for p in cache.iterdir()} == {"meta.json", "node-th", "node-vn", "node-kh"}, "kept for reuse"


def test_throughput_bench_prints_catch_up_and_live_rates_and_ends_with_the_ratio() -> None:
    _result, lines = run_bench("throughput_bench.py", "--cases", "5", "--edits", "60", "--seconds", "2", timeout=170)
    assert any(line.startswith("machine: ") and "CPUs" in line for line in lines)
    assert any(
        re.match(r"catch-up: B held all 65 entries .*: [\d,]+ edits/s applied, durable and synced", line)
        for line in lines
    )
    assert any(re.match(r"live: 16 clients for 2 s: A acknowledged \d+ notes \(0 refused\)", line) for line in lines)
    assert any(re.match(r"live: B held them all .*: [\d,]+ edits/s end to end", line) for line in lines)
