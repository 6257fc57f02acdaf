"""`reid bench data --stores jpeg` with the pipeline's constants set in memory (the runs of 2026-12-07):

    python variant.py MAX_BATCHES_PER_TASK TASKS_IN_FLIGHT OUT.json [BATCHES REPEATS]

(defaults 32 batches, 3 repeats; the long fits were `8 4|8 long-N.json 200 1`)."""
import argparse
import sys

if __name__ == "__main__":  # the bench starts fresh processes that import this file again
    from reid.bench import data as bench
    from reid.data import pipeline

    pipeline._MAX_BATCHES_PER_TASK = int(sys.argv[1])
    pipeline._TASKS_IN_FLIGHT_PER_ACTOR = int(sys.argv[2])
    batches, repeats = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else ("32", "3")
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    bench.run(p.parse_args(["--stores", "jpeg", "--batches", batches, "--repeats", repeats, "--json", sys.argv[3]]))
