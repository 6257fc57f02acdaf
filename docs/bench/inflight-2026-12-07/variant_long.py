import argparse
import sys

if __name__ == "__main__":
    from reid.bench import data as bench
    from reid.data import pipeline

    pipeline._TASKS_IN_FLIGHT_PER_ACTOR = int(sys.argv[1])
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    bench.run(p.parse_args(["--stores", "jpeg", "--batches", "200", "--repeats", "1", "--json", sys.argv[2]]))
