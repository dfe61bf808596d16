"""Chaos benchmark: the research pipeline under connector faults and random SIGKILLs.

Runs `reliable-graph chaos`'s engine (`run_chaos`) on the reliable research pipeline of
docs/scenario.md (context gate, reliable_step with validator and judge, re-fetches,
escalations), its model and retrieval connectors faulted by the scenario's profile at
f = --fault-rate (half HTTP 429 with a Retry-After, half timeouts, plus permanent HTTP 400s at
0.002 per call; httpx's exception types), on a real SQLite file. A share --kill-rate of the
runs has its worker SIGKILLed at a random point; each killed thread resumes in a new process.
Reported: runs lost (unhandled exception or never completed), kills, resumed runs, completed
steps re-executed after a kill (counted from real executions), outcomes, retries and waits per
fault type, connector calls apart from scored attempts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

from reliable_graph.demo import ScenarioParams
from reliable_graph.resilience import run_chaos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000, help="runs (default 1000)")
    parser.add_argument("--fault-rate", type=float, default=0.3, help="f, the transient fault rate (default 0.3)")
    parser.add_argument("--kill-rate", type=float, default=0.13, help="share of runs SIGKILLed (default 0.13)")
    parser.add_argument("--seed", type=int, default=0, help="seed of faults and kills (default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if not args.json and (done % max(1, total // 10) == 0 or done == total):
            print(f"  {done}/{total} runs", file=sys.stderr, flush=True)

    report = run_chaos(
        "reliable_graph.demo:research_pipeline",
        inputs="reliable_graph.demo:research_input",
        runs=args.runs,
        profile="scenario",
        rate=args.fault_rate,
        seed=args.seed,
        kill_rate=args.kill_rate,
        progress=progress,
    )
    report.pop("db", None)
    report["scenario"] = {**ScenarioParams().describe(), "fault_rate": args.fault_rate}
    report["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    report["wall_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(report))
        return 0
    keys = ("runs", "completed", "lost", "unhandled", "kills", "resumed", "steps_reexecuted", "logical_attempts")
    print(f"research pipeline, scenario faults at f={args.fault_rate}, kill rate {args.kill_rate}, seed {args.seed}")
    for key in keys:
        print(f"  {key:18} {report[key]}")
    print(f"  outcomes           {report['outcomes']}")
    print(f"  run outcomes       {report['run_outcomes']}")
    print(f"  retries            {report['retries']}")
    print(f"  connector calls    {report['connector_calls']}")
    print(f"{report['wall_s']} s on {report['machine']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
