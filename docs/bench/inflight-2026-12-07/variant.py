"""One `reid bench data --stores jpeg` run with pipeline constants patched: python variant.py MAXB INFLIGHT OUT"""
import argparse
import sys

if __name__ == "__main__":
    from reid.bench import data as bench
    from reid.data import pipeline

    pipeline._MAX_BATCHES_PER_TASK = int(sys.argv[1])
    pipeline._TASKS_IN_FLIGHT_PER_ACTOR = int(sys.argv[2])
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    args = p.parse_args(["--stores", "jpeg", "--repeats", "3", "--json", sys.argv[3]])
    bench.run(args)
