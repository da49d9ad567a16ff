"""The predict figures of `tfdenoise bench` alone (`bench.prediction`) on a photo folder:
python tools/bench_predict.py PHOTOS N OUT.json   (N full-size images, <= 4 MP, largest first)
"""

import json
import sys
import time

from tfdenoise.bench import machine
from tfdenoise.bench.config import BenchConfig
from tfdenoise.bench.prediction import measure_predict
from tfdenoise.io import files

corpus, images, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
scan = files.scan(corpus)
config = BenchConfig(predict_images=images)
started = time.perf_counter()
result = measure_predict(config, scan.files, print)
result["wall_s"] = round(time.perf_counter() - started, 1)
result["machine"] = machine()
result["command"] = " ".join(["python", *sys.argv])
print(json.dumps(result, indent=1))
open(out, "w").write(json.dumps({"predict": result}, indent=1) + "\n")
